{#-
  autodeploy: cancel a running task step (saltutil.kill_job on its target).

  Master config:
      reactor:
        - 'autodeploy/task/*/kill':
          - /srv/autodeploy/reactor/autodeploy_kill.sls

  Event: tag autodeploy/task/<task_id>/kill, data {"body": ..., "sig": ...}, signed
  exactly like the run event (reactor/autodeploy_task.sls, docs/correlation.md).
      body = {"task_id": str, "attempt": int >= 1, "jid": str (the job to kill),
              "tgt": str | [str], "tgt_type": str (as for run),
              "kill_jid": str (optional: the jid of the kill job itself)}

  saltutil.kill_job sends SIGKILL to the job's process and its children. The killed
  job never returns: no salt/job/<jid>/ret/<minion> comes for it. What comes is the
  kill job's own return, salt/job/<kill_jid>/ret/<minion>, with
  return "Signal 9 sent to job <jid> at pid <pid>" (or "" when the job was not running
  on that minion) and metadata {autodeploy_task, attempt, step: "kill", target_jid}.
-#}
{%- set errors = [] %}
{%- set parts = tag.split('/') %}
{%- set task_id = parts[2] if parts | length == 4 else '' %}
{%- set req = {} %}
{%- if data.get('cmd') == '_minion_event' or 'id' in data %}
  {%- do errors.append('sent by a minion (id ' ~ (data.get('id', '?') | json) ~ ')') %}
{%- elif data.get('body') is not string or data.get('sig') is not string %}
  {%- do errors.append('not signed (needs body and sig)') %}
{%- else %}
  {%- set keyfile = opts['cachedir'] ~ '/.' ~ (opts.get('user') or 'root') ~ '_key' %}
  {%- set key = salt['file.read'](keyfile) %}
  {%- if key | length < 16 %}
    {%- do errors.append('master key unreadable (' ~ keyfile ~ ')') %}
  {%- elif not ((tag ~ '|' ~ data.body) | hmac(key, data.sig)) %}
    {%- do errors.append('bad signature') %}
  {%- else %}
    {%- set parsed = data.body | load_json %}
    {%- if parsed is mapping %}
      {%- do req.update(parsed) %}
    {%- else %}
      {%- do errors.append('body is not a JSON object') %}
    {%- endif %}
  {%- endif %}
{%- endif %}

{%- if not errors %}
  {%- set jid = req.get('jid') %}
  {%- set kill_jid = req.get('kill_jid') or '' %}
  {%- set attempt = req.get('attempt') %}
  {%- set tgt = req.get('tgt') %}
  {%- set tgt_type = req.get('tgt_type') or ('list' if tgt is sequence and tgt is not string else 'glob') %}
  {%- if not (task_id is match('^[A-Za-z0-9_.:-]{1,128}$')) or (task_id | regex_search('[^A-Za-z0-9_.:-]')) is not none or req.get('task_id') != task_id %}
    {%- do errors.append('task_id ' ~ (req.get('task_id') | json) ~ ' does not match the tag') %}
  {%- endif %}
  {%- if jid is not string or not (jid is match('^[0-9]{20}(_[A-Za-z0-9]{1,40})?$')) or (jid | regex_search('[^0-9A-Za-z_]')) is not none %}
    {%- do errors.append('jid ' ~ (jid | json) ~ ' is not a Salt jid') %}
  {%- endif %}
  {%- if kill_jid and (kill_jid is not string or not (kill_jid is match('^[0-9]{20}(_[A-Za-z0-9]{1,40})?$')) or (kill_jid | regex_search('[^0-9A-Za-z_]')) is not none) %}
    {%- do errors.append('kill_jid ' ~ (kill_jid | json) ~ ' is not a Salt jid') %}
  {%- endif %}
  {%- if attempt is not integer or attempt is sameas true or attempt is sameas false or attempt < 1 %}
    {%- do errors.append('attempt must be an integer >= 1') %}
  {%- endif %}
  {%- if not tgt or (tgt is not string and (tgt is not sequence or tgt is mapping)) %}
    {%- do errors.append('tgt must be a non-empty string or list') %}
  {%- elif tgt is not string and tgt_type != 'list' %}
    {%- do errors.append('a list tgt needs tgt_type list') %}
  {%- endif %}
  {%- if tgt_type not in ['glob', 'pcre', 'list', 'grain', 'grain_pcre', 'pillar', 'pillar_pcre', 'nodegroup', 'range', 'compound', 'ipcidr'] %}
    {%- do errors.append('unknown tgt_type ' ~ (tgt_type | json)) %}
  {%- endif %}
{%- endif %}

{%- if errors %}
  {%- do salt['log.warning']('autodeploy reactor: ignored ' ~ tag ~ ': ' ~ (errors | join('; '))) %}
{}
{%- else %}
{{ ('autodeploy_kill_' ~ task_id ~ '_' ~ attempt) | json }}:
  local.saltutil.kill_job:
    - tgt: {{ tgt | json }}
    - tgt_type: {{ tgt_type | json }}
    {%- if kill_jid %}
    - jid: {{ kill_jid | json }}
    {%- endif %}
    - args:
      - jid: {{ jid | json }}
    - metadata: {{ {'autodeploy_task': task_id, 'attempt': attempt, 'step': 'kill', 'target_jid': jid} | json }}
{%- endif %}
