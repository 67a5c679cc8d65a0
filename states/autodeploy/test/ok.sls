{#- Test helper: a state that always succeeds without changes. #}
autodeploy_test_ok:
  test.succeed_without_changes:
    - name: autodeploy test ok
