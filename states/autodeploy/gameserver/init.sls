{#-
  autodeploy.gameserver: deploy ONE game server instance. Deploy only.

  This state lays the instance down and stops there: user and group, directories,
  the binary, the rendered config and a systemd unit file. It never starts, restarts,
  enables or masks the service (no service.running / service.enabled / service.dead
  here, on purpose): opening a server to players is a separate decision that is not
  autodeploy's. The unit is installed disabled; `systemctl daemon-reload` is the only
  thing said to systemd, and only when systemd runs and the unit went to the real
  unit dir.

  Pillar (usually passed by the reactor as a pillar override; see docs/correlation.md
  for what must not travel that way):

    autodeploy:
      unit_dir: /etc/systemd/system      # default; tests point it into their temp dir
      daemon_reload: true                # default: true only for /etc/systemd/system
      service:
        id: cn-s101                      # required: the instance's id
        platform: cn                     # required: [A-Za-z0-9_-]
        server_no: 101                   # required: [A-Za-z0-9_-]
        user: game                       # required: runs the server, owns the dirs
        group: game                      # default: the user
        manage_user: true                # default: create the user/group (system ones)
        base_dir: /data/game             # required, absolute; the instance lives in
                                         # <base_dir>/game-<platform>-<server_no>
        port: 7001                       # required, 1..65535
        binary: gameserver               # default: name under bin/
        config_format: ini               # ini (default) or json
        config: {...}                    # rendered into conf/game.ini | conf/game.json:
                                         # scalars under [server], dicts as sections
        artifact:                        # optional; without it a placeholder binary
          source: salt://... | file:///...   # is written (files/placeholder.sh.jinja)
          source_hash: sha256=...        # optional (needed for http/https sources)
        version: 1.2.3                   # optional, shown by the placeholder
        pid_file: <home>/run/<binary>.pid   # where whoever starts the server (not
                                         # autodeploy) writes its pid; read by the
                                         # autodeploy_services beacon when the server
                                         # does not run as the systemd unit
      services_dir: /etc/autodeploy/services.d   # default; the beacon's record
                                         # <services_dir>/<id>.json {id, unit, pid_file}

  Results: every state id starts with autodeploy_gameserver_; a missing or bad
  pillar value gives one failing state (autodeploy_gameserver_pillar) and nothing else.
-#}
{%- set svc = salt['pillar.get']('autodeploy:service', {}) %}
{%- set unit_dir = salt['pillar.get']('autodeploy:unit_dir', '/etc/systemd/system') %}
{%- set daemon_reload = salt['pillar.get']('autodeploy:daemon_reload', unit_dir == '/etc/systemd/system') %}
{%- set services_dir = salt['pillar.get']('autodeploy:services_dir', '/etc/autodeploy/services.d') %}
{%- set errors = [] %}
{%- for key in ['id', 'platform', 'server_no', 'user', 'base_dir', 'port'] %}
  {%- if svc.get(key) is none or svc.get(key) | string == '' %}
    {%- do errors.append('autodeploy:service:' ~ key ~ ' is missing') %}
  {%- endif %}
{%- endfor %}
{%- if not errors %}
  {%- set platform = svc.platform | string %}
  {%- set server_no = svc.server_no | string %}
  {%- set base_dir = svc.base_dir | string %}
  {%- if not (platform is match('^[A-Za-z0-9_-]{1,32}$')) %}
    {%- do errors.append('autodeploy:service:platform must match [A-Za-z0-9_-]{1,32}') %}
  {%- endif %}
  {%- if not (server_no is match('^[A-Za-z0-9_-]{1,32}$')) %}
    {%- do errors.append('autodeploy:service:server_no must match [A-Za-z0-9_-]{1,32}') %}
  {%- endif %}
  {%- if not base_dir.startswith('/') or base_dir.rstrip('/') == '' or '..' in base_dir.split('/') %}
    {%- do errors.append('autodeploy:service:base_dir must be an absolute path other than /') %}
  {%- endif %}
  {%- if not ((svc.id | string) is match('^[A-Za-z0-9_.-]{1,160}$')) or (svc.id | string).startswith('.') %}
    {%- do errors.append('autodeploy:service:id must match [A-Za-z0-9_.-]{1,160}') %}
  {%- endif %}
  {%- if not (services_dir | string).startswith('/') or '..' in (services_dir | string).split('/') %}
    {%- do errors.append('autodeploy:services_dir must be absolute') %}
  {%- endif %}
  {%- if svc.get('pid_file') is not none and not ((svc.pid_file | string).startswith('/')) %}
    {%- do errors.append('autodeploy:service:pid_file must be absolute') %}
  {%- endif %}
  {%- if not (unit_dir | string).startswith('/') %}
    {%- do errors.append('autodeploy:unit_dir must be absolute') %}
  {%- endif %}
  {%- if not ((svc.port | string) is match('^[0-9]{1,5}$')) or (svc.port | int) < 1 or (svc.port | int) > 65535 %}
    {%- do errors.append('autodeploy:service:port must be 1..65535') %}
  {%- endif %}
  {%- if svc.get('config_format', 'ini') not in ['ini', 'json'] %}
    {%- do errors.append('autodeploy:service:config_format must be ini or json') %}
  {%- endif %}
  {%- if svc.get('config') is not none and svc.get('config') is not mapping %}
    {%- do errors.append('autodeploy:service:config must be a mapping') %}
  {%- endif %}
{%- endif %}

{%- if errors %}
autodeploy_gameserver_pillar:
  test.fail_without_changes:
    - name: {{ errors | join('; ') | json }}
{%- else %}
{%- set name = 'game-' ~ platform ~ '-' ~ server_no %}
{%- set user = svc.user | string %}
{%- set group = (svc.get('group') or user) | string %}
{%- set home = base_dir.rstrip('/') ~ '/' ~ name %}
{%- set binary = (svc.get('binary') or 'gameserver') | string %}
{%- set fmt = svc.get('config_format', 'ini') %}
{%- set config_file = home ~ '/conf/game.' ~ fmt %}
{%- set unit_file = unit_dir.rstrip('/') ~ '/' ~ name ~ '.service' %}
{%- set pid_file = (svc.get('pid_file') or (home ~ '/run/' ~ binary ~ '.pid')) | string %}
{#- How the autodeploy_services beacon finds this server (docs/usage.md). #}
{%- set record = {'id': svc.id | string, 'platform': platform, 'server_no': server_no,
                  'unit': name ~ '.service', 'pid_file': pid_file, 'home': home} %}
{%- set artifact = svc.get('artifact') %}
{%- if artifact is string %}{% set artifact = {'source': artifact} %}{% endif %}
{%- set ctx = {
      'svc': svc, 'name': name, 'user': user, 'group': group, 'home': home,
      'binary': binary, 'config_file': config_file, 'port': svc.port | int,
      'config': svc.get('config') or {}} %}

{%- if svc.get('manage_user', True) %}
autodeploy_gameserver_group:
  group.present:
    - name: {{ group | json }}
    - system: True

autodeploy_gameserver_user:
  user.present:
    - name: {{ user | json }}
    - gid: {{ group | json }}
    - home: {{ home | json }}
    - createhome: False
    - shell: /usr/sbin/nologin
    - system: True
    - require:
      - group: autodeploy_gameserver_group
{%- endif %}

autodeploy_gameserver_base_dir:
  file.directory:
    - name: {{ base_dir | json }}
    - makedirs: True

autodeploy_gameserver_home:
  file.directory:
    - name: {{ home | json }}
    - user: {{ user | json }}
    - group: {{ group | json }}
    - mode: '0750'
    - require:
      - file: autodeploy_gameserver_base_dir
{%- if svc.get('manage_user', True) %}
      - user: autodeploy_gameserver_user
{%- endif %}

{%- for sub in ['bin', 'conf', 'logs', 'data', 'run'] %}

autodeploy_gameserver_dir_{{ sub }}:
  file.directory:
    - name: {{ (home ~ '/' ~ sub) | json }}
    - user: {{ user | json }}
    - group: {{ group | json }}
    - mode: '0750'
    - require:
      - file: autodeploy_gameserver_home
{%- endfor %}

autodeploy_gameserver_binary:
  file.managed:
    - name: {{ (home ~ '/bin/' ~ binary) | json }}
{%- if artifact %}
    - source: {{ artifact.source | json }}
  {%- if artifact.get('source_hash') %}
    - source_hash: {{ artifact.source_hash | json }}
  {%- endif %}
{%- else %}
    - source: salt://autodeploy/gameserver/files/placeholder.sh.jinja
    - template: jinja
    - context: {{ ctx | json }}
{%- endif %}
    - user: {{ user | json }}
    - group: {{ group | json }}
    - mode: '0750'
    - require:
      - file: autodeploy_gameserver_dir_bin

autodeploy_gameserver_config:
  file.managed:
    - name: {{ config_file | json }}
    - source: salt://autodeploy/gameserver/files/game.{{ fmt }}.jinja
    - template: jinja
    - context: {{ ctx | json }}
    - user: {{ user | json }}
    - group: {{ group | json }}
    - mode: '0640'
    - require:
      - file: autodeploy_gameserver_dir_conf

{#- The unit file is installed, not enabled and not started (deploy only). #}
autodeploy_gameserver_unit:
  file.managed:
    - name: {{ unit_file | json }}
    - source: salt://autodeploy/gameserver/files/game.service.jinja
    - template: jinja
    - context: {{ ctx | json }}
    - user: root
    - group: root
    - mode: '0644'
    - makedirs: True
    - require:
      - file: autodeploy_gameserver_binary
      - file: autodeploy_gameserver_config

{#- The record the autodeploy_services beacon measures this server by. #}
autodeploy_gameserver_record:
  file.managed:
    - name: {{ (services_dir.rstrip('/') ~ '/' ~ (svc.id | string) ~ '.json') | json }}
    - contents: {{ (record | json) | json }}
    - user: root
    - group: root
    - mode: '0644'
    - makedirs: True
    - require:
      - file: autodeploy_gameserver_unit
{%- if daemon_reload %}

{#- Tell systemd the unit file changed (it is still neither enabled nor started).
    Skipped where systemd is not running. #}
autodeploy_gameserver_daemon_reload:
  cmd.run:
    - name: systemctl daemon-reload
    - onlyif: test -d /run/systemd/system
    - onchanges:
      - file: autodeploy_gameserver_unit
{%- endif %}
{%- endif %}
