{#- Test helper: sleep autodeploy:test:seconds (default 30) seconds, e.g. to be killed. #}
{%- set seconds = salt['pillar.get']('autodeploy:test:seconds', 30) | int %}
autodeploy_test_sleep:
  cmd.run:
    - name: sleep {{ seconds }}
