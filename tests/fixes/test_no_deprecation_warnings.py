"""No deprecation warnings (fix 12): constructing ``Callback`` or ``EventCallback``, directly or
through the graph, warns nothing."""

import warnings

from graphai import Callback, Graph
from graphai.callback import EventCallback


class TestFix12NoDeprecationWarnings:
    """Constructing `Callback` or `EventCallback` (directly or through the graph) emits no
    `DeprecationWarning`."""

    def test_no_warnings(self):
        """Fails on upstream because `Callback.__init__` warns that the class is deprecated and
        `EventCallback.__init__` warns about its format parameters, on every construction."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            Callback()
            Callback(identifier="x", special_token_format="<{token}>", token_format="{token}")
            EventCallback()
            EventCallback(identifier="x")
            Graph().get_callback()
            Graph().set_callback(EventCallback).get_callback()
        assert [w for w in caught if issubclass(w.category, DeprecationWarning)] == []
