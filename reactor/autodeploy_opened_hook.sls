{#-
  autodeploy: a service opened to players, from salt-api's webhook.

  Master config:
      autodeploy_hook_token: <a long random secret>   # shared with the sending system
      rest_cherrypy: {..., webhook_url: /hook}          # webhook_disable_auth: True only
                                                        # if the token is the only guard
      reactor:
        - 'salt/netapi/hook/autodeploy/opened':
          - /srv/autodeploy/reactor/autodeploy_opened_hook.sls

  Request: POST /hook/autodeploy/opened, header X-Autodeploy-Token: <secret>,
  JSON body {"service": "qq-s1001", "at": "2026-11-27T10:00:00Z" (optional)}.

  salt-api fires salt/netapi/hook/autodeploy/opened with {"post", "headers", "body"}.
  Any minion could put an event with that tag on the bus too, so the token decides
  (compared in constant time); an event sent by a minion the careless way is refused
  outright. Accepted requests run the autodeploy.opened runner, which fires the signed
  autodeploy/service/<id>/opened event the engine acts on.
-#}
{%- set errors = [] %}
{%- set expected = opts.get('autodeploy_hook_token') or '' %}
{%- set headers = data.get('headers') or {} %}
{%- set post = data.get('post') or {} %}
{%- set given = headers.get('X-Autodeploy-Token') or headers.get('x-autodeploy-token') or '' %}
{%- if data.get('cmd') == '_minion_event' or 'id' in data %}
  {%- do errors.append('sent by a minion') %}
{%- elif expected | length < 16 %}
  {%- do errors.append('autodeploy_hook_token is not set (16+ characters) in the master config') %}
{%- elif given is not string or (given | sha256) != (expected | sha256) %}
  {%- do errors.append('bad or missing X-Autodeploy-Token') %}
{%- elif post is not mapping or post.get('service') is not string or not (post.service is match('^[A-Za-z0-9_-]{1,40}-s[0-9]{1,12}$')) %}
  {%- do errors.append('body must be {"service": "<platform>-s<number>", "at": optional}') %}
{%- endif %}
{%- if errors %}
  {%- do salt['log.warning']('autodeploy reactor: ignored ' ~ tag ~ ': ' ~ (errors | join('; '))) %}
{}
{%- else %}
{{ ('autodeploy_opened_' ~ post.service) | json }}:
  runner.autodeploy.opened:
    - args:
      - id: {{ post.service | json }}
      {%- if post.get('at') %}
      - at: {{ post.at | string | json }}
      {%- endif %}
{%- endif %}
