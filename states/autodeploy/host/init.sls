{#-
  autodeploy.host: initialise a game-server host (issue 4, "Init"). Run once by the
  registration handler through the task system; safe to run again (a second run on
  an initialised host reports no changes).

  What it lays down:
    * <base_dir>/{games,logs,backup}, owned by the game user, mode 0750;
    * the game user and group (system ones, login shell /usr/sbin/nologin);
    * <sysctl_file>: kernel settings for many sockets and files, each commented,
      applied at once (`sysctl -p <file>`) unless apply_sysctl is false; re-applied
      only when a running value differs from the file;
    * <limits_file>: nofile/nproc for the game user (pam_limits; systemd units set
      their own LimitNOFILE=);
    * the runtime packages;
    * <beacons_file>: Salt's load, memusage and diskusage beacons, set up to fire every
      beacon_interval seconds whatever the load (history, not alerting), and the same
      beacons put into the running minion with beacon.present (beacons.add/modify over
      the minion's event bus: no restart). The file is what a restarted minion reads.

  Pillar (all optional; see docs/host-init.md):

    autodeploy:
      host:
        base_dir: /data                  # absolute; the dirs below live in it
        dirs: [games, logs, backup]      # names under base_dir
        dir_mode: '0750'                 # quoted octal
        user: game                       # [a-z_][a-z0-9_-]{0,31}
        group: game                      # default: the user
        uid: null                        # optional fixed ids (same on every host)
        gid: null
        home: null                       # default: not managed (useradd's default)
        manage_user: true                # false: the user/group must exist already
        packages: [libstdc++6, ca-certificates, tzdata]   # [] installs nothing;
                                         # items: 'name' or {name: version}
        sysctl_file: /etc/sysctl.d/90-autodeploy-game.conf
        sysctl: {}                       # merged over the defaults below; a key set
                                         # to null drops that default
        apply_sysctl: true               # false: write the file only
        limits_file: /etc/security/limits.d/90-autodeploy-game.conf
        limits: {nofile: 1048576, nproc: 65535}
        beacons_file: /etc/salt/minion.d/autodeploy-beacons.conf
        beacon_interval: 60              # seconds, 1..86400
        beacon_mounts: ['/', <base_dir>] # diskusage mount points (Salt regexes);
                                         # one that is not a mount point gives no event
        apply_beacons: true              # false: write the file only (image builds)
        services_beacon: true            # the autodeploy_services beacon: what each
                                         # game server uses (docs/usage.md); synced from
                                         # salt://_beacons with saltutil.sync_beacons
      services_dir: /etc/autodeploy/services.d   # where autodeploy.gameserver records
                                         # its servers (the same key as that state's)

  Results: every state id starts with autodeploy_host_; a missing or bad pillar value
  gives one failing state (autodeploy_host_pillar, its name lists each bad key) and
  nothing else, so the job's retcode is 2, as for any failing state.
-#}
{%- set h = salt['pillar.get']('autodeploy:host', {}) %}
{%- set errors = [] %}
{%- if h is not mapping %}
  {%- do errors.append('autodeploy:host must be a mapping') %}
  {%- set h = {} %}
{%- endif %}

{#- Defaults. Each sysctl is [key, value, why]; the why becomes the comment. #}
{%- set sysctl_defaults = [
  ['fs.file-max', 9223372036854775807,
   'System-wide cap on open files (every player connection is a socket): none. Same value systemd sets at boot, so this never lowers it.'],
  ['fs.nr_open', 1073741816,
   'Per-process ceiling for RLIMIT_NOFILE (must stay >= nofile in limits.d). Same value systemd sets at boot.'],
  ['net.core.somaxconn', 65535,
   'Listen backlog cap: absorbs login storms when a server opens or players reconnect.'],
  ['net.core.netdev_max_backlog', 16384,
   'Packets queued per CPU before the stack processes them (bursty UDP/TCP traffic).'],
  ['net.ipv4.tcp_max_syn_backlog', 65535,
   'Half-open connections kept while a burst of clients connects.'],
  ['net.ipv4.tcp_syncookies', 1,
   'Keep accepting connections when the SYN queue overflows (SYN floods).'],
  ['net.ipv4.tcp_tw_reuse', 1,
   'Reuse TIME_WAIT sockets for new outgoing connections (to DBs, caches, other servers).'],
  ['net.ipv4.tcp_fin_timeout', 15,
   'Seconds an orphaned connection stays in FIN_WAIT_2; frees sockets of dropped players sooner.'],
  ['net.ipv4.tcp_max_tw_buckets', 262144,
   'TIME_WAIT sockets kept before the kernel destroys them (and logs it).'],
  ['net.ipv4.ip_local_port_range', '15000 65000',
   'Ephemeral ports for outgoing connections. Game servers must listen below 15000 (or reserve their ports with net.ipv4.ip_local_reserved_ports).'],
  ['net.ipv4.tcp_keepalive_time', 600,
   'Seconds idle before keepalive probes start on sockets with SO_KEEPALIVE: dead clients found in ~12 min instead of 2 h.'],
  ['net.ipv4.tcp_keepalive_intvl', 30,
   'Seconds between keepalive probes.'],
  ['net.ipv4.tcp_keepalive_probes', 5,
   'Unanswered probes before the connection is dropped.'],
  ['net.ipv4.tcp_slow_start_after_idle', 0,
   'Keep the congestion window across idle gaps: no slow restart for bursty game traffic.'],
  ['net.core.rmem_max', 16777216,
   'Largest receive buffer a socket may ask for (SO_RCVBUF), bytes.'],
  ['net.core.wmem_max', 16777216,
   'Largest send buffer a socket may ask for (SO_SNDBUF), bytes.'],
  ['vm.swappiness', 10,
   'Prefer dropping page cache to swapping out game processes (latency spikes).'],
  ['vm.max_map_count', 1048576,
   'Memory mappings per process; JVM and allocator-heavy servers outgrow the old 65530 (newer distributions ship this value).'],
] %}
{%- set default_packages = ['libstdc++6', 'ca-certificates', 'tzdata'] %}

{#- Paths: absolute, no .., no whitespace or quotes (they end up in shell commands). #}
{%- macro check_path(key, value) -%}
  {%- if value is not string or not (value is match('^/[A-Za-z0-9._/+@-]*$'))
        or value.rstrip('/') == '' or '..' in value.split('/') -%}
    {%- do errors.append('autodeploy:host:' ~ key ~ ' must be an absolute path other than / ([A-Za-z0-9._/+@-], no ..)') -%}
  {%- endif -%}
{%- endmacro %}
{%- macro check_bool(key, value) -%}
  {%- if not (value is sameas true or value is sameas false) -%}
    {%- do errors.append('autodeploy:host:' ~ key ~ ' must be true or false') -%}
  {%- endif -%}
{%- endmacro %}
{%- macro is_int(value) -%}
  {%- if value is not sameas true and value is not sameas false and value is not none
        and (value is number or value is string)
        and ((value | string) is match('^[0-9]{1,10}$')) -%}yes{%- endif -%}
{%- endmacro %}

{%- set base_dir = h.get('base_dir', '/data') %}
{%- set sysctl_file = h.get('sysctl_file', '/etc/sysctl.d/90-autodeploy-game.conf') %}
{%- set limits_file = h.get('limits_file', '/etc/security/limits.d/90-autodeploy-game.conf') %}
{%- set beacons_file = h.get('beacons_file', '/etc/salt/minion.d/autodeploy-beacons.conf') %}
{%- do check_path('base_dir', base_dir) %}
{%- do check_path('sysctl_file', sysctl_file) %}
{%- do check_path('limits_file', limits_file) %}
{%- do check_path('beacons_file', beacons_file) %}

{%- set dirs = h.get('dirs', ['games', 'logs', 'backup']) %}
{%- if dirs is string or dirs is mapping or dirs is not sequence %}
  {%- do errors.append('autodeploy:host:dirs must be a list of names') %}
  {%- set dirs = [] %}
{%- else %}
  {%- for d in dirs %}
    {%- if d is not string or not (d is match('^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$')) %}
      {%- do errors.append('autodeploy:host:dirs items must be names ([A-Za-z0-9._-], no /)') %}
    {%- endif %}
  {%- endfor %}
{%- endif %}
{%- set dir_mode = h.get('dir_mode', '0750') %}
{%- if dir_mode is not string or not (dir_mode is match('^0?[0-7]{3}$')) %}
  {%- do errors.append("autodeploy:host:dir_mode must be a quoted octal string like '0750'") %}
{%- endif %}

{%- set user = h.get('user', 'game') %}
{%- if user is not string or not (user is match('^[a-z_][a-z0-9_-]{0,31}$')) %}
  {%- do errors.append('autodeploy:host:user must match [a-z_][a-z0-9_-]{0,31}') %}
{%- endif %}
{%- set group = h.get('group') or user %}
{%- if group is not string or not (group is match('^[a-z_][a-z0-9_-]{0,31}$')) %}
  {%- do errors.append('autodeploy:host:group must match [a-z_][a-z0-9_-]{0,31}') %}
{%- endif %}
{%- for key in ['uid', 'gid'] %}
  {%- if h.get(key) is not none and not is_int(h.get(key)) %}
    {%- do errors.append('autodeploy:host:' ~ key ~ ' must be a non-negative integer') %}
  {%- endif %}
{%- endfor %}
{%- set home = h.get('home') %}
{%- if home is not none %}{% do check_path('home', home) %}{% endif %}
{%- set manage_user = h.get('manage_user', true) %}
{%- do check_bool('manage_user', manage_user) %}

{%- set packages = h.get('packages', default_packages) %}
{%- if packages is none or packages is string or packages is mapping or packages is not sequence %}
  {%- do errors.append('autodeploy:host:packages must be a list (of names or {name: version})') %}
  {%- set packages = [] %}
{%- else %}
  {%- for p in packages %}
    {%- if p is string %}
      {%- set pname, pver = p, '' %}
    {%- elif p is mapping and p | length == 1 %}
      {%- set pname, pver = (p | list)[0], p[(p | list)[0]] | string %}
    {%- else %}
      {%- set pname, pver = '', '' %}
    {%- endif %}
    {%- if pname is not string or not (pname is match('^[A-Za-z0-9][A-Za-z0-9.+_:-]{0,127}$'))
          or not (pver is match('^[A-Za-z0-9.+_:~*=<>-]{0,64}$')) %}
      {%- do errors.append('autodeploy:host:packages items must be package names or {name: version}') %}
    {%- endif %}
  {%- endfor %}
{%- endif %}

{#- sysctl: defaults, then the pillar's keys over them (null drops one). #}
{%- set sysctl_pillar = h.get('sysctl', {}) %}
{%- if sysctl_pillar is none %}{% set sysctl_pillar = {} %}{% endif %}
{%- set sysctl = [] %}
{%- if sysctl_pillar is not mapping %}
  {%- do errors.append('autodeploy:host:sysctl must be a mapping of key: value') %}
{%- else %}
  {%- for key, value, why in sysctl_defaults %}
    {%- if key in sysctl_pillar %}
      {%- if sysctl_pillar[key] is not none %}
        {%- do sysctl.append([key, sysctl_pillar[key], why ~ ' (value from pillar; default ' ~ value ~ ')']) %}
      {%- endif %}
    {%- else %}
      {%- do sysctl.append([key, value, why]) %}
    {%- endif %}
  {%- endfor %}
  {%- set known = sysctl_defaults | map('first') | list %}
  {%- for key, value in sysctl_pillar.items() %}
    {%- if key not in known and value is not none %}
      {%- do sysctl.append([key, value, 'Set by pillar autodeploy:host:sysctl.']) %}
    {%- endif %}
  {%- endfor %}
  {%- for key, value, why in sysctl %}
    {%- if key is not string or not (key is match('^[A-Za-z0-9_-]+([./][A-Za-z0-9_-]+)+$')) or key | length > 128 %}
      {%- do errors.append('autodeploy:host:sysctl: key ' ~ (key | string | truncate(64) | json) ~ ' is not a sysctl name') %}
    {%- elif value is sameas true or value is sameas false or value is mapping
          or (value is sequence and value is not string)
          or not ((value | string) is match('^[A-Za-z0-9 \t._:,/+-]{1,256}$')) %}
      {%- do errors.append('autodeploy:host:sysctl:' ~ key ~ ' must be a number or a plain string') %}
    {%- endif %}
  {%- endfor %}
{%- endif %}
{%- set apply_sysctl = h.get('apply_sysctl', true) %}
{%- do check_bool('apply_sysctl', apply_sysctl) %}

{%- set limits_pillar = h.get('limits', {}) %}
{%- if limits_pillar is none %}{% set limits_pillar = {} %}{% endif %}
{%- set limits = {'nofile': 1048576, 'nproc': 65535} %}
{%- if limits_pillar is not mapping %}
  {%- do errors.append('autodeploy:host:limits must be a mapping {nofile: N, nproc: N}') %}
{%- else %}
  {%- for key in limits_pillar %}
    {%- if key not in ['nofile', 'nproc'] %}
      {%- do errors.append('autodeploy:host:limits:' ~ (key | string | truncate(32)) ~ ' is not supported (nofile, nproc)') %}
    {%- elif not is_int(limits_pillar[key]) or (limits_pillar[key] | int) < 1 %}
      {%- do errors.append('autodeploy:host:limits:' ~ key ~ ' must be a positive integer') %}
    {%- else %}
      {%- do limits.update({key: limits_pillar[key] | int}) %}
    {%- endif %}
  {%- endfor %}
  {#- pam_limits refuses a session whose nofile exceeds fs.nr_open: keep them in step. #}
  {%- set nr_open = [1048576] %}
  {%- for key, value, why in sysctl if key == 'fs.nr_open' and is_int(value) %}
    {%- do nr_open.append(value | int) %}
  {%- endfor %}
  {%- if limits.nofile > nr_open | last %}
    {%- do errors.append('autodeploy:host:limits:nofile (' ~ limits.nofile ~ ') exceeds fs.nr_open (' ~ nr_open | last ~ ')') %}
  {%- endif %}
{%- endif %}

{%- set interval = h.get('beacon_interval', 60) %}
{%- if not is_int(interval) or (interval | int) < 1 or (interval | int) > 86400 %}
  {%- do errors.append('autodeploy:host:beacon_interval must be 1..86400 (seconds)') %}
{%- endif %}
{%- set default_mounts = ['/'] %}
{%- if base_dir is string and base_dir.startswith('/') and base_dir.rstrip('/') != '' %}
  {%- do default_mounts.append(base_dir.rstrip('/')) %}
{%- endif %}
{%- set mounts = h.get('beacon_mounts', default_mounts) %}
{%- if mounts is string or mounts is mapping or mounts is not sequence or not mounts %}
  {%- do errors.append('autodeploy:host:beacon_mounts must be a non-empty list of mount points') %}
{%- else %}
  {%- for m in mounts %}
    {%- if m is not string or not (m is match('^[/^][^\x00-\x1f]{0,255}$')) %}
      {%- do errors.append('autodeploy:host:beacon_mounts items must be mount points (strings starting with / or ^)') %}
    {%- endif %}
  {%- endfor %}
{%- endif %}
{%- set apply_beacons = h.get('apply_beacons', true) %}
{%- do check_bool('apply_beacons', apply_beacons) %}
{%- set services_beacon = h.get('services_beacon', true) %}
{%- do check_bool('services_beacon', services_beacon) %}
{%- set services_dir = salt['pillar.get']('autodeploy:services_dir', '/etc/autodeploy/services.d') %}
{%- if services_dir is not string or not (services_dir is match('^/[A-Za-z0-9._/+@-]*$'))
      or services_dir.rstrip('/') == '' or '..' in services_dir.split('/') %}
  {%- do errors.append('autodeploy:services_dir must be an absolute path other than / ([A-Za-z0-9._/+@-], no ..)') %}
{%- endif %}

{%- if errors %}
autodeploy_host_pillar:
  test.fail_without_changes:
    - name: {{ errors | unique | join('; ') | json }}
{%- else %}
{%- set base = base_dir.rstrip('/') %}
{%- set interval = interval | int %}
{#- The beacons, in the list-of-dicts form both Salt 3006 and 3008 read. Thresholds that
    every reading "exceeds", so each fires every interval:
      load:      fires when an average is < low or > high; high -1 is always exceeded
                 (onchangeonly false: no edge detection);
      memusage:  fires when used% >= percent; 0 always;
      diskusage: fires per matching mount when used% >= its threshold; 0 always. #}
{%- set beacons = {
  'load': [{'interval': interval},
           {'averages': {'1m': [-1.0, -1.0], '5m': [-1.0, -1.0], '15m': [-1.0, -1.0]}},
           {'onchangeonly': false},
           {'emitatstartup': true}],
  'memusage': [{'interval': interval}, {'percent': 0}],
  'diskusage': [{'interval': interval}],
} %}
{%- for m in mounts | unique %}{% do beacons.diskusage.append({m: 0}) %}{% endfor %}
{%- set beacon_names = ['load', 'memusage', 'diskusage'] %}
{%- if services_beacon %}
{#- Per game server: one event per interval with every recorded service (docs/usage.md). #}
{%- do beacons.update({'autodeploy_services': [{'interval': interval}, {'services_dir': services_dir}]}) %}
{%- do beacon_names.append('autodeploy_services') %}
{%- endif %}
{%- set ctx = {'user': user, 'group': group, 'sysctl': sysctl, 'limits': limits,
               'beacons': beacons, 'beacon_names': beacon_names, 'interval': interval} %}

{%- if manage_user %}
autodeploy_host_group:
  group.present:
    - name: {{ group | json }}
    - system: True
{%- if h.get('gid') is not none %}
    - gid: {{ h.get('gid') | int }}
{%- endif %}

autodeploy_host_user:
  user.present:
    - name: {{ user | json }}
    - gid: {{ group | json }}
{%- if h.get('uid') is not none %}
    - uid: {{ h.get('uid') | int }}
{%- endif %}
{%- if home is not none %}
    - home: {{ home | json }}
{%- endif %}
    - createhome: False
    - shell: /usr/sbin/nologin
    - system: True
    - require:
      - group: autodeploy_host_group
{%- endif %}

autodeploy_host_base_dir:
  file.directory:
    - name: {{ base | json }}
    - makedirs: True

{%- for d in dirs | unique %}

autodeploy_host_dir_{{ d }}:
  file.directory:
    - name: {{ (base ~ '/' ~ d) | json }}
    - user: {{ user | json }}
    - group: {{ group | json }}
    - mode: {{ dir_mode | json }}
    - require:
      - file: autodeploy_host_base_dir
{%- if manage_user %}
      - user: autodeploy_host_user
{%- endif %}
{%- endfor %}

autodeploy_host_sysctl_file:
  file.managed:
    - name: {{ sysctl_file | json }}
    - source: salt://autodeploy/host/files/sysctl.conf.jinja
    - template: jinja
    - context: {{ ctx | json }}
    - user: root
    - group: root
    - mode: '0644'
    - makedirs: True
{%- if apply_sysctl %}

{#- Load the file unless every running value already equals it (so a run that failed
    half way is retried, and an initialised host reports no changes). `echo $(...)`
    folds the tabs of multi-value keys (ip_local_port_range) into single spaces. #}
{%- set checks = ['true'] %}
{%- for key, value, why in sysctl %}
  {%- do checks.append('[ "$(echo $(sysctl -n ' ~ key ~ ' 2>/dev/null))" = "' ~ ((value | string).split() | join(' ')) ~ '" ]') %}
{%- endfor %}
autodeploy_host_sysctl_apply:
  cmd.run:
    - name: {{ ('sysctl -p ' ~ sysctl_file) | json }}
    - unless: {{ checks | join(' && ') | json }}
    - require:
      - file: autodeploy_host_sysctl_file
{%- endif %}

autodeploy_host_limits_file:
  file.managed:
    - name: {{ limits_file | json }}
    - source: salt://autodeploy/host/files/limits.conf.jinja
    - template: jinja
    - context: {{ ctx | json }}
    - user: root
    - group: root
    - mode: '0644'
    - makedirs: True
{%- if packages %}

autodeploy_host_packages:
  pkg.installed:
    - pkgs: {{ packages | json }}
{%- endif %}

autodeploy_host_beacons_file:
  file.managed:
    - name: {{ beacons_file | json }}
    - source: salt://autodeploy/host/files/beacons.conf.jinja
    - template: jinja
    - context: {{ ctx | json }}
    - user: root
    - group: root
    - mode: '0644'
    - makedirs: True
{%- if apply_beacons %}
{%- if services_beacon %}

{#- The extension lives on the master, not on the minions: the beacon module travels
    as salt://_beacons/autodeploy_services.py (Salt 3006 and 3008 alike). refresh
    reloads the minion's beacons, before beacon.present below asks it to add one. #}
autodeploy_host_sync_beacons:
  saltutil.sync_beacons:
    - refresh: True
{%- endif %}
{%- for name in beacon_names %}

{#- Into the running minion, no restart: beacons.list / beacons.add / beacons.modify
    over the minion's own event bus (manage_beacons), answered by the minion process.
    No change when the running config already equals this one. #}
autodeploy_host_beacon_{{ name }}:
  beacon.present:
    - name: {{ name }}
    - save: False
{%- for item in beacons[name] %}
    - {{ item | json }}
{%- endfor %}
    - require:
      - file: autodeploy_host_beacons_file
{%- if name == 'autodeploy_services' %}
      - saltutil: autodeploy_host_sync_beacons
{%- endif %}
{%- endfor %}
{%- endif %}
{%- endif %}
