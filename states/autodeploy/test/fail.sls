{#- Test helper: a failing state; the job's retcode is 2 (a state failed). #}
autodeploy_test_fail:
  cmd.run:
    - name: echo "autodeploy test failure" >&2; exit 2
