"""Compatibility with graphai-lib 0.0.12: the behavioural acceptance checks of
``reference/upstream-graphai.md`` section 7 (and the details of sections 2 and 3) that
``spec/ENGINE.md`` keeps, with upstream's exact values and messages, one module per feature.

Section 7 "Quirk" checks that ENGINE.md fixes (caller input mutated, join edges ignored by
``compile()``, ``token_format`` ignored, the callback left open) are asserted here as the fixed
behaviour; ``tests/test_fixes.py`` has the tests that prove each fix differs from upstream.
"""
