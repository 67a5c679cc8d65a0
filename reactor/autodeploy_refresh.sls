{#-
  autodeploy: ask a minion to send its grains again (host registration's
  fallback when the master's minion data cache has no grains for it: an older
  image, a cache cleared by hand).

  Master config:
      reactor:
        - 'autodeploy/host/*/refresh':
          - /srv/autodeploy/reactor/autodeploy_refresh.sls

  Event: tag autodeploy/host/<minion id>/refresh, data {"body": ..., "sig": ...},
  signed like the task events (reactor/autodeploy_task.sls, docs/correlation.md).
      body = {"minion": "<minion id>" (must be the tag's)}

  The job: saltutil.refresh_grains on that minion. The minion then re-sends its
  grains in a _pillar request, the master rewrites its data cache and fires
  minion/refresh/<id>; registration reads the cache again. The job's return is
  not used (returns can be forged; the cache cannot: docs/registration-research.md).
-#}
{%- set errors = [] %}
{%- set parts = tag.split('/') %}
{%- set minion = parts[2] if parts | length == 4 else '' %}
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
{%- if not errors and (req.get('minion') != minion or not (minion is match('^[A-Za-z0-9_.@:-]{1,128}$')) or (minion | regex_search('[^A-Za-z0-9_.@:-]')) is not none) %}
  {%- do errors.append('minion ' ~ (req.get('minion') | json) ~ ' does not match the tag') %}
{%- endif %}

{%- if errors %}
  {%- do salt['log.warning']('autodeploy reactor: ignored ' ~ tag ~ ': ' ~ (errors | join('; '))) %}
{}
{%- else %}
{{ ('autodeploy_refresh_' ~ minion) | json }}:
  local.saltutil.refresh_grains:
    - tgt: {{ minion | json }}
    - tgt_type: list
{%- endif %}
