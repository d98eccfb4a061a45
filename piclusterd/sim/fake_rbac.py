"""Authentication and RBAC authorization for the fake API server, as kube-apiserver does them.

- Bearer tokens map to identities (user name + groups), as kube-apiserver's token authenticators do; a
  request without a known token is 401 ``Unauthorized``.
- ``system:masters`` may do anything (the privileged group of
  staging/src/k8s.io/apiserver/pkg/authorization/authorizerfactory); everyone else is judged by RBAC
  (plugin/pkg/auth/authorizer/rbac/rbac.go and pkg/apis/rbac/v1/evaluation_helpers.go): the rules of every
  Role or ClusterRole bound to the identity, a RoleBinding's only in its own namespace.
- Request attributes are derived from the URL as staging/src/k8s.io/apiserver/pkg/endpoints/request/
  requestinfo.go does: verbs get/list/watch/create/update/patch/delete/deletecollection, subresources, and
  a list or watch with a ``metadata.name`` field selector carries that name.
- The bootstrap ClusterRoles every authenticated user has (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/
  policy.go: system:discovery, system:public-info-viewer, system:basic-user) are built in.
- A denial is a 403 ``Forbidden`` Status with the message of
  staging/src/k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/errors.go forbiddenMessage.
"""

from __future__ import annotations

import fnmatch
import importlib.resources
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from piclusterd.sim.fake_watch import is_watch

__all__ = [
    "ADMIN_TOKEN",
    "DAEMON_TOKEN",
    "Identity",
    "RbacAuthorizer",
    "RequestAttributes",
    "forbidden_message",
    "load_rbac_documents",
    "shipped_rbac",
]

ADMIN_TOKEN = "fake-kube-admin-token"
"""The cluster admin's token (``system:masters``): what an operator's kubeconfig and test set-up use."""

DAEMON_TOKEN = "fake-kube-piclusterd-token"
"""The token of the piclusterd ServiceAccount made by deploy/rbac.yaml: what the daemons use."""

DAEMON_NAMESPACE = "piclusterd"
DAEMON_SERVICE_ACCOUNT = "piclusterd"

_RBAC_KINDS = ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")


@dataclass(frozen=True, slots=True)
class Identity:
    """user.Info: a user name and its groups."""

    user: str
    groups: frozenset[str]

    @classmethod
    def service_account(cls, namespace: str, name: str) -> Identity:
        """serviceaccount.UserInfo: the user and groups a ServiceAccount token authenticates as."""
        return cls(
            f"system:serviceaccount:{namespace}:{name}",
            frozenset({"system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"}),
        )


ADMIN = Identity("kubernetes-admin", frozenset({"system:masters", "system:authenticated"}))
DAEMON = Identity.service_account(DAEMON_NAMESPACE, DAEMON_SERVICE_ACCOUNT)


@dataclass(frozen=True, slots=True)
class RequestAttributes:
    """authorizer.Attributes of one request."""

    verb: str
    resource_request: bool
    path: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True)
class _Rule:
    verbs: tuple[str, ...]
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    resource_names: tuple[str, ...]
    non_resource_urls: tuple[str, ...]

    @classmethod
    def parse(cls, rule: Mapping[str, Any]) -> _Rule:
        def strings(key: str) -> tuple[str, ...]:
            return tuple(str(item) for item in rule.get(key) or ())

        return cls(
            strings("verbs"), strings("apiGroups"), strings("resources"), strings("resourceNames"),
            strings("nonResourceURLs"),
        )  # fmt: skip

    def allows(self, request: RequestAttributes) -> bool:
        """RuleAllows (pkg/apis/rbac/v1/evaluation_helpers.go)."""
        if not ("*" in self.verbs or request.verb in self.verbs):
            return False
        if not request.resource_request:
            return any(
                url == "*" or url == request.path or (url.endswith("*") and request.path.startswith(url[:-1]))
                for url in self.non_resource_urls
            )
        if not ("*" in self.api_groups or request.api_group in self.api_groups):
            return False
        combined = f"{request.resource}/{request.subresource}" if request.subresource else request.resource
        if not any(
            resource in ("*", combined) or (request.subresource and resource == f"*/{request.subresource}")
            for resource in self.resources
        ):
            return False
        return not self.resource_names or request.name in self.resource_names


# plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go, bound to system:authenticated (and, for the
# public info, system:unauthenticated) by the cluster's bootstrap ClusterRoleBindings.
_BOOTSTRAP_RULES = (
    _Rule(
        ("get",), (), (), (),
        ("/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*", "/healthz", "/livez", "/readyz",
         "/version", "/version/"),
    ),
    _Rule(("create",), ("authorization.k8s.io",), ("selfsubjectaccessreviews", "selfsubjectrulesreviews"), (), ()),
)  # fmt: skip


def load_rbac_documents(text: str) -> list[dict[str, Any]]:
    """The objects of a multi-document YAML file such as deploy/rbac.yaml."""
    import yaml  # PyYAML comes with the kubernetes client

    return [dict(document) for document in yaml.safe_load_all(text) if isinstance(document, Mapping)]


def shipped_rbac() -> list[dict[str, Any]]:
    """deploy/rbac.yaml as shipped (the package keeps a copy; a test keeps the two equal)."""
    text = importlib.resources.files("piclusterd.sim").joinpath("data/rbac.yaml").read_text(encoding="utf-8")
    return load_rbac_documents(text)


class RbacAuthorizer:
    """Evaluates RBAC objects (Roles, ClusterRoles and their bindings) for identities known by token."""

    def __init__(
        self,
        objects: Iterable[Mapping[str, Any]] | str | Path = (),
        *,
        tokens: Mapping[str, Identity] | None = None,
    ) -> None:
        if isinstance(objects, Path):
            objects = load_rbac_documents(objects.read_text(encoding="utf-8"))
        elif isinstance(objects, str):
            objects = load_rbac_documents(objects)
        self._tokens: dict[str, Identity] = dict(tokens or {ADMIN_TOKEN: ADMIN, DAEMON_TOKEN: DAEMON})
        self._roles: dict[tuple[str, str, str], tuple[_Rule, ...]] = {}  # (kind, namespace, name) -> rules
        self._bindings: list[tuple[str, str, tuple[str, str], tuple[Mapping[str, Any], ...]]] = []
        for obj in objects:
            kind = str(obj.get("kind") or "")
            if kind not in _RBAC_KINDS:
                continue  # Namespaces, ServiceAccounts and Secrets are not RBAC
            metadata = obj.get("metadata") or {}
            namespace = str(metadata.get("namespace") or "") if kind.startswith("Role") else ""
            name = str(metadata.get("name") or "")
            if kind in ("Role", "ClusterRole"):
                self._roles[(kind, namespace, name)] = tuple(_Rule.parse(rule) for rule in obj.get("rules") or ())
            else:
                reference = obj.get("roleRef") or {}
                role = (str(reference.get("kind") or ""), str(reference.get("name") or ""))
                self._bindings.append((kind, namespace, role, tuple(obj.get("subjects") or ())))

    def authenticate(self, authorization_header: str) -> Identity | None:
        """The identity of ``Authorization: Bearer <token>``, or None (401).

        A request without credentials is the admin's: the fake serves plain HTTP, as kube-apiserver's
        insecure port did (``--insecure-port``, removed in 1.24: no authentication, full rights), and
        kubectl sends no token over plain HTTP. Every piclusterd client sends its token.
        """
        if not authorization_header.strip():
            return ADMIN
        scheme, _, token = authorization_header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        return self._tokens.get(token.strip())

    def add_token(self, token: str, identity: Identity) -> None:
        self._tokens[token] = identity

    def decide(self, identity: Identity, request: RequestAttributes) -> tuple[bool, str]:
        """(allowed, reason) as the RBAC authorizer reports it to a SubjectAccessReview."""
        if "system:masters" in identity.groups:
            return True, ""
        if any(rule.allows(request) for rule in _BOOTSTRAP_RULES):
            return True, "RBAC: allowed by the bootstrap roles of system:authenticated"
        for kind, namespace, (role_kind, role_name), subjects in self._bindings:
            if kind == "RoleBinding" and namespace != request.namespace:
                continue
            if not any(_subject_matches(subject, identity, namespace) for subject in subjects):
                continue
            role_namespace = namespace if role_kind == "Role" else ""
            for rule in self._roles.get((role_kind, role_namespace, role_name), ()):
                if rule.allows(request):
                    return True, f'RBAC: allowed by {kind} "{role_name}" of {role_kind} "{role_name}"'
        return False, ""


def _subject_matches(subject: Mapping[str, Any], identity: Identity, binding_namespace: str) -> bool:
    """appliesToUser (plugin/pkg/auth/authorizer/rbac/rbac.go): a User or Group by name, a ServiceAccount
    by namespace (the binding's when empty) and name."""
    kind = subject.get("kind")
    name = str(subject.get("name") or "")
    if kind == "User":
        return name == identity.user
    if kind == "Group":
        return name in identity.groups or (
            name.endswith("*") and any(fnmatch.fnmatch(g, name) for g in identity.groups)
        )
    if kind == "ServiceAccount":
        namespace = str(subject.get("namespace") or binding_namespace)
        return identity.user == f"system:serviceaccount:{namespace}:{name}"
    return False


def forbidden_message(identity: Identity, request: RequestAttributes) -> str:
    """The 403's message, as kube-apiserver writes it (responsewriters/errors.go + apierrors.NewForbidden)."""
    if not request.resource_request:
        return f'forbidden: User "{identity.user}" cannot {request.verb} path "{request.path}"'
    resource = f"{request.resource}/{request.subresource}" if request.subresource else request.resource
    qualified = f"{request.resource}.{request.api_group}" if request.api_group else request.resource
    subject = f'{qualified} "{request.name}"' if request.name else qualified
    where = f'in the namespace "{request.namespace}"' if request.namespace else "at the cluster scope"
    return (
        f'{subject} is forbidden: User "{identity.user}" cannot {request.verb} resource "{resource}" '
        f'in API group "{request.api_group}" {where}'
    )


def request_attributes(method: str, parts: Sequence[str], query: Mapping[str, str]) -> RequestAttributes:
    """requestinfo.go NewRequestInfo for the paths the fake serves."""
    path = "/" + "/".join(parts)
    if parts[:2] == ["api", "v1"]:
        group, rest = "", list(parts[2:])
    elif len(parts) >= 3 and parts[0] == "apis":
        group, rest = parts[1], list(parts[3:])
    else:
        return RequestAttributes(method.lower() if method != "GET" else "get", False, path)
    namespace = ""
    if len(rest) >= 2 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
        if not rest:  # /api/v1/namespaces/<name>: the namespace object itself
            rest = ["namespaces", namespace]
            namespace = ""
    if not rest:
        return RequestAttributes("get", False, path)
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, "get")
    if not name and verb == "get":
        verb = "watch" if is_watch(query) else "list"
        selector = query.get("fieldSelector") or ""
        for term in selector.split(","):
            key, _, value = term.partition("=")
            if key.strip() == "metadata.name" and value.strip():
                name = value.strip().lstrip("=")
    elif not name and verb == "delete":
        verb = "deletecollection"
    return RequestAttributes(verb, True, path, group, resource, subresource, namespace, name)
