{#-
  autodeploy: run one step of a task as a Salt job whose jid we chose.

  Master config:
      reactor:
        - 'autodeploy/task/*/run':
          - /srv/autodeploy/reactor/autodeploy_task.sls

  Event (fired on the master bus by the master side; see docs/correlation.md):
      tag:  autodeploy/task/<task_id>/run
      data: {"body": "<JSON text of the request>", "sig": "<base64 HMAC-SHA256>"}
      sig  = base64(HMAC-SHA256(key, tag + "|" + body)), key = the exact contents of
             <cachedir>/.<master user>_key (the key LocalClient uses; new at every
             master start)
      body = {"task_id": str, "attempt": int >= 1, "jid": str, "tgt": str | [str],
              "tgt_type": str (default "list" for a list tgt, else "glob"),
              "mods": str | [str] (default "autodeploy.gameserver"),
              "pillar": {...} (default {}), "saltenv": str (optional),
              "step": str (default "deploy"), "test": bool (optional),
              "ret": str (optional returner list), "timeout": int (optional,
              not passed to Salt: the task system's deadline, enforced by a kill)}

  The job: local.state.apply on tgt with jid = body.jid (exactly; Salt keeps a jid it
  is given) and metadata {autodeploy_task, attempt, step}, which every
  salt/job/<jid>/ret/<minion> event carries back.

  Refused, with a warning in the master log and no job:
    * an event sent by a minion: a plain event.fire_master/event.send arrives wrapped
      ({id, cmd: _minion_event, data: ...}); an "events" preload arrives unwrapped and
      looks exactly like a master-side fire, so only the signature tells them apart;
    * a missing or wrong signature;
    * a body that is not valid: task id not the tag's, jid not in Salt's format
      (20 digits, optional _suffix of letters/digits), attempt not a positive integer,
      bad target, mods or pillar.
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
  {%- set attempt = req.get('attempt') %}
  {%- set tgt = req.get('tgt') %}
  {%- set tgt_type = req.get('tgt_type') or ('list' if tgt is sequence and tgt is not string else 'glob') %}
  {%- set mods = req.get('mods') or 'autodeploy.gameserver' %}
  {%- set pillar_override = req.get('pillar') or {} %}
  {%- set step = req.get('step') or 'deploy' %}
  {%- if not (task_id is match('^[A-Za-z0-9_.:-]{1,128}$')) or (task_id | regex_search('[^A-Za-z0-9_.:-]')) is not none or req.get('task_id') != task_id %}
    {%- do errors.append('task_id ' ~ (req.get('task_id') | json) ~ ' does not match the tag') %}
  {%- endif %}
  {%- if jid is not string or not (jid is match('^[0-9]{20}(_[A-Za-z0-9]{1,40})?$')) or (jid | regex_search('[^0-9A-Za-z_]')) is not none %}
    {%- do errors.append('jid ' ~ (jid | json) ~ ' is not a Salt jid (20 digits, optional _suffix)') %}
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
  {%- if mods is not string and (mods is not sequence or mods is mapping) %}
    {%- do errors.append('mods must be a string or list') %}
  {%- endif %}
  {%- if pillar_override is not mapping %}
    {%- do errors.append('pillar must be a mapping') %}
  {%- endif %}
  {%- if step is not string %}
    {%- do errors.append('step must be a string') %}
  {%- endif %}
{%- endif %}

{%- if errors %}
  {%- do salt['log.warning']('autodeploy reactor: ignored ' ~ tag ~ ': ' ~ (errors | join('; '))) %}
{}
{%- else %}
{#- The id is unique per task attempt, so two events rendered together never merge. #}
{{ ('autodeploy_task_' ~ task_id ~ '_' ~ attempt) | json }}:
  local.state.apply:
    - tgt: {{ tgt | json }}
    - tgt_type: {{ tgt_type | json }}
    {#- Our jid, as a string (unquoted digits would be read as an integer, which the
        master refuses: "Failed to allocate a jid"). #}
    - jid: {{ jid | string | json }}
    {%- if req.get('ret') %}
    - ret: {{ req.ret | string | json }}
    {%- endif %}
    {#- state.apply keyword arguments; `args` is the reactor form both 3006 and 3008
        read as kwargs. No `queue`: Salt's state queue re-runs a queued job under a
        jid cut to its first 20 digits and without metadata, so a busy minion must
        fail fast ("The function state.apply is running as PID ...") and the task
        system retries with a new jid. #}
    - args:
      - mods: {{ mods | json }}
      - pillar: {{ pillar_override | json }}
      {%- if req.get('saltenv') %}
      - saltenv: {{ req.saltenv | string | json }}
      {%- endif %}
      {%- if req.get('test') is sameas true %}
      - test: true
      {%- endif %}
    - metadata: {{ {'autodeploy_task': task_id, 'attempt': attempt, 'step': step} | json }}
{%- endif %}
