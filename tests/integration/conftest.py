"""The test cluster of real piclusterd processes in network namespaces (see README.md here)."""

from __future__ import annotations

import pytest

from .cluster import NetnsUnavailable, require_root_and_netns


@pytest.fixture(autouse=True)
def _needs_root_and_netns() -> None:
    """Fail, never skip, when the machine cannot build the cluster: these scenarios must run in CI."""
    try:
        require_root_and_netns()
    except NetnsUnavailable as error:
        pytest.fail(f"the integration cluster cannot run here: {error}")
