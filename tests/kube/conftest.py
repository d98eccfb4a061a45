"""Fixtures for the Kubernetes-facing tests: a manual clock and the fake API server with real clients."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from piclusterd.sim.fake_api_server import FakeKubeServer
from piclusterd.sim.fake_clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1000.0, epoch=1_800_000_000.0 - 1000.0)


@pytest.fixture
def kube(clock: FakeClock) -> Iterator[FakeKubeServer]:
    with FakeKubeServer(clock=clock) as server:
        yield server


@pytest.fixture
def api(kube: FakeKubeServer) -> Iterator[client.ApiClient]:
    api_client = kube.api_client()
    yield api_client
    api_client.close()


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
def policy(api: client.ApiClient) -> client.PolicyV1Api:
    return client.PolicyV1Api(api)


@pytest.fixture
def coordination(api: client.ApiClient) -> client.CoordinationV1Api:
    return client.CoordinationV1Api(api)
