{#-
  autodeploy: place a host order through a Salt runner (the `runner` order backend,
  docs/purchase.md).

  Master config:
      reactor:
        - 'autodeploy/order/*/place':
          - /srv/autodeploy/reactor/autodeploy_order_place.sls

  Event (fired on the master bus by the engine, signed as the task events are; see
  docs/correlation.md):
      tag:  autodeploy/order/<order_id>/place
      data: {"body": "<JSON text of the request>", "sig": "<base64 HMAC-SHA256>"}
      sig  = base64(HMAC-SHA256(key, tag + "|" + body)), key = the exact contents of
             <cachedir>/.<master user>_key
      body = {"id": str (the tag's order id), "runner": "module.function",
              "dry_run": bool, "args": {...} (the runner's options),
              "order": {"_id", "profile", "flavour", "region", "count", "reason", ...}}

  The job: runner.<runner> with order, dry_run and options (= args). The runner reports
  its result with a signed autodeploy/order/<id>/placed event
  ({id, ok, cloud_order_id, error, dry_run}); the order id is the cloud's client token,
  so running this twice for one order never orders twice.

  Refused, with a warning in the master log and no runner started: an event sent by a
  minion, a missing or wrong signature, a body that is not valid (id not the tag's,
  runner not module.function, order not a mapping with the same _id, dry_run not a
  boolean, args not a mapping).
-#}
{%- set errors = [] %}
{%- set parts = tag.split('/') %}
{%- set order_id = parts[2] if parts | length == 4 else '' %}
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
  {%- set runner = req.get('runner') %}
  {%- set order = req.get('order') %}
  {%- set args = req.get('args') or {} %}
  {%- set dry_run = req.get('dry_run', false) %}
  {%- if not (order_id is match('^[A-Za-z0-9_.:-]{1,128}$')) or (order_id | regex_search('[^A-Za-z0-9_.:-]')) is not none or req.get('id') != order_id %}
    {%- do errors.append('id ' ~ (req.get('id') | json) ~ ' does not match the tag') %}
  {%- endif %}
  {%- if runner is not string or not (runner is match('^[A-Za-z_][A-Za-z0-9_]*[.][A-Za-z_][A-Za-z0-9_]*$')) or (runner | regex_search('[^A-Za-z0-9_.]')) is not none %}
    {%- do errors.append('runner ' ~ (runner | json) ~ ' is not module.function') %}
  {%- endif %}
  {%- if order is not mapping or order.get('_id') != order_id %}
    {%- do errors.append('order must be a mapping whose _id is the tag\'s id') %}
  {%- endif %}
  {%- if dry_run is not sameas true and dry_run is not sameas false %}
    {%- do errors.append('dry_run must be true or false') %}
  {%- endif %}
  {%- if args is not mapping %}
    {%- do errors.append('args must be a mapping') %}
  {%- endif %}
{%- endif %}

{%- if errors %}
  {%- do salt['log.warning']('autodeploy reactor: ignored ' ~ tag ~ ': ' ~ (errors | join('; '))) %}
{}
{%- else %}
{{ ('autodeploy_order_place_' ~ order_id) | json }}:
  {{ ('runner.' ~ runner) }}:
    - args:
      - order: {{ order | json }}
      - dry_run: {{ dry_run | json }}
      - options: {{ args | json }}
{%- endif %}
