"""Kubernetes names: one definition per format, checked alike by the API server (CEL) and the operator.

Every name or reference field of the API is one of the annotated types below. Each carries the rule of the
Kubernetes validation function it cites (k8s.io/apimachinery/pkg/util/validation), as regexes that are
both RE2 and Python syntax: the same strings go into CEL `matches()` in the CRD and into `re.fullmatch`
in the operator, so the two cannot disagree. `[.]` stands for a literal dot (no escapes inside CEL
string literals).

Why `matches()` and not the Kubernetes CEL `format` library (`format.dns1123Subdomain().validate(self)`):
kube-apiserver 1.36 accepts the library on spec fields, but it reached CRD validation only in 1.32
(introduced in 1.31's stored-expression environment) while the chart supports 1.30; and on
metadata.name at the CRD root its cost estimate exceeds the per-rule budget (the estimator does not bound
metadata.name), where `size()` and `matches()` fit.

A name the API server would refuse, or one that addresses another path (`..`, `a/b`, `%2F`), never
reaches a URL: the schema refuses it, the operator refuses it (Accepted=False naming the field), and the
clients refuse it before any request (`check_path_name`).

Derived names (the children's) come from `child_name`: the owner's name plus a suffix when that fits the
child's limit, else the owner's name cut short plus a hash of the whole of it, so two owners never share
a child.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN = f"{_LABEL}([.]{_LABEL})*"


@dataclass(frozen=True)
class NameFormat:
    """A Kubernetes name format: every regex must match the whole value, and it is at most `max_length` long."""

    title: str  # "DNS-1123 subdomain"
    regexes: tuple[str, ...]
    max_length: int
    accepts: str  # the rule in words, for messages
    source: str  # the Kubernetes function whose rule this is

    def describe(self) -> str:
        article = "an" if self.title[0] in "aeiou" else "a"
        return f"{article} {self.title} ({self.accepts}; at most {self.max_length} characters)"

    def is_valid(self, value: str) -> bool:
        return len(value) <= self.max_length and all(re.fullmatch(rx, value) for rx in self.regexes)

    def cel(self, expr: str = "self") -> str:
        """The CEL condition that `expr` (a string) has this format."""
        checks = [f"{expr}.size() <= {self.max_length}"] + [f"{expr}.matches('^(?:{rx})$')" for rx in self.regexes]
        return " && ".join(checks)


DNS1123_LABEL = NameFormat(
    "DNS-1123 label",
    (_LABEL,),
    63,
    "lowercase letters, digits and '-', starting and ending with a letter or digit",
    "IsDNS1123Label",
)
DNS1123_SUBDOMAIN = NameFormat(
    "DNS-1123 subdomain",
    (_SUBDOMAIN,),
    253,
    "lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
    "IsDNS1123Subdomain",
)
DNS1035_LABEL = NameFormat(
    "DNS-1035 label",
    ("[a-z]([-a-z0-9]*[a-z0-9])?",),
    63,
    "lowercase letters, digits and '-', starting with a letter and ending with a letter or digit",
    "IsDNS1035Label",
)
# A key of a ConfigMap's or Secret's data: not '.', '..' or anything starting with '..' (hasChDirPrefix).
CONFIGMAP_KEY = NameFormat(
    "data key",
    ("[.]?[-_a-zA-Z0-9][-._a-zA-Z0-9]*",),
    253,
    "letters, digits, '-', '_' and '.', not '.' or '..' and not starting with '..'",
    "IsConfigMapKey",
)
# The classic C-identifier-like rule every supported API server accepts (1.34's relaxed one is wider).
# Kubernetes sets no length limit; 256 bounds the CEL cost.
ENV_VAR_NAME = NameFormat(
    "environment variable name",
    ("([-_a-zA-Z]|[.][-_a-zA-Z0-9])[-._a-zA-Z0-9]*",),
    256,
    "letters, digits, '-', '_' and '.', not starting with a digit, not '.' or '..' and not starting with '..'",
    "IsEnvVarName",
)
# A label key: [prefix/]name, the prefix a DNS-1123 subdomain of at most 253 characters, the name at most 63.
QUALIFIED_NAME = NameFormat(
    "label key",
    (f"({_SUBDOMAIN}/)?([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]", "([^/]{1,253}/)?[^/]{1,63}"),
    253 + 1 + 63,
    "[prefix/]name: an optional DNS-1123 subdomain prefix of at most 253 characters and '/', then a name of "
    "at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
    "IsQualifiedName",
)
# A Kueue LocalQueue's name also becomes the kueue.x-k8s.io/queue-name label value: at most 63 characters.
QUEUE_NAME = NameFormat(
    "DNS-1123 subdomain",
    (_SUBDOMAIN,),
    63,
    "lowercase letters, digits, '-' and '.', starting and ending with a letter or digit; it becomes the "
    "kueue.x-k8s.io/queue-name label value",
    "IsDNS1123Subdomain and IsValidLabelValue",
)
# A served adapter name: the model clients request and a directory name in the serving pod. A label value
# (as the API always had it: lowercase), so never '.', '..' or a path.
ADAPTER_NAME = NameFormat(
    "lowercase label value",
    ("[a-z0-9]([-a-z0-9_.]*[a-z0-9])?",),
    63,
    "lowercase letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
    "IsValidLabelValue",
)
# FineTuneJob and ModelDeployment names: their Services, Jobs and pods' hostnames are named after them
# and become DNS names and label values (see OBJECT_NAME_RULE).
OBJECT_NAME = DNS1035_LABEL


# --------------------------------------------------------------------------- the annotated types


def _shown(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")


@dataclass(frozen=True)
class KubeName:
    """Pydantic annotation: the string is a `fmt`; the JSON Schema gets maxLength and the CEL rule."""

    fmt: NameFormat
    what: str  # "a Secret name"

    @property
    def message(self) -> str:
        return f"must be {self.what}: {self.fmt.describe()}"

    def _validate(self, value: str) -> str:
        if not self.fmt.is_valid(value):
            raise PydanticCustomError(
                "kubernetes_name",
                "{value} is not valid: {rule}",
                {
                    "value": _shown(value),
                    "rule": self.message,
                },
            )
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self._validate, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        out = handler(schema)
        out["maxLength"] = self.fmt.max_length  # also bounds the CEL cost estimate
        out.setdefault("x-kubernetes-validations", []).append({"rule": self.fmt.cel(), "message": self.message})
        return out


SecretName = Annotated[str, KubeName(DNS1123_SUBDOMAIN, "a Secret name")]
SecretKey = Annotated[str, KubeName(CONFIGMAP_KEY, "a Secret key")]
ServiceAccountName = Annotated[str, KubeName(DNS1123_SUBDOMAIN, "a ServiceAccount name")]
PriorityClassName = Annotated[str, KubeName(DNS1123_SUBDOMAIN, "a PriorityClass name")]
QueueName = Annotated[str, KubeName(QUEUE_NAME, "a Kueue LocalQueue name")]
HttpRouteName = Annotated[str, KubeName(DNS1123_SUBDOMAIN, "an HTTPRoute name")]
FineTuneJobName = Annotated[str, KubeName(OBJECT_NAME, "a FineTuneJob name")]
ServingProfileName = Annotated[str, KubeName(OBJECT_NAME, "a ServingProfile name")]
AdapterName = Annotated[str, KubeName(ADAPTER_NAME, "an adapter name")]
EnvVarName = Annotated[str, KubeName(ENV_VAR_NAME, "an environment variable name")]
TaintKey = Annotated[str, KubeName(QUALIFIED_NAME, "a taint key")]


# --------------------------------------------------------------------------- object names


OBJECT_NAME_MESSAGE = (
    f"metadata.name must be {OBJECT_NAME.describe()}: Services, Jobs and pod hostnames are named after it"
)
# At the CRD root (where CEL sees metadata.name). On create only: the name is immutable, and an object
# created before this rule must stay updatable (status, finalizers), which a root rule on update would block.
OBJECT_NAME_RULE: dict[str, Any] = {
    "rule": f"oldSelf.hasValue() || ({OBJECT_NAME.cel('self.metadata.name')})",
    "optionalOldSelf": True,
    "fieldPath": ".metadata.name",
    "message": OBJECT_NAME_MESSAGE,
}


def object_name_problem(name: str) -> str | None:
    """Why a FineTuneJob or ModelDeployment name is refused (an object from before the CRD rule), or None."""
    if OBJECT_NAME.is_valid(name):
        return None
    return f"metadata.name: {_shown(name)} is not valid: must be {OBJECT_NAME.describe()}"


# --------------------------------------------------------------------------- URIs naming objects

_PVC_CLAIM = DNS1123_SUBDOMAIN
# pvc://CLAIM[/PATH]: no path segment is '..' (a segment is empty, starts with a character other than '.',
# is '.' or '.x...', or is '..' followed by more).
_PVC_REGEXES = (
    f"pvc://{_SUBDOMAIN}(/([^/.][^/]*|[.]([^/.][^/]*)?|[.][.][^/]+)?)*",
    "pvc://[^/]{1,253}(/.*)?",
)
PVC_URI_MESSAGE = (
    f"a pvc:// URI is pvc://CLAIM/PATH: CLAIM is a PersistentVolumeClaim name, {_PVC_CLAIM.describe()}, "
    "and PATH has no '..' segment"
)
_CONFIGMAP_REGEXES = (
    f"configmap://{_SUBDOMAIN}/{CONFIGMAP_KEY.regexes[0]}",
    "configmap://[^/]{1,253}/[^/]{1,253}",
)
CONFIGMAP_URI_MESSAGE = (
    f"a configmap:// URI is configmap://NAME/KEY: NAME is a ConfigMap name, {DNS1123_SUBDOMAIN.describe()}, "
    f"and KEY is {CONFIGMAP_KEY.describe()}"
)
_SCHEME_RULES = {
    "pvc://": (_PVC_REGEXES, PVC_URI_MESSAGE),
    "configmap://": (_CONFIGMAP_REGEXES, CONFIGMAP_URI_MESSAGE),
}


def _matches_all(regexes: tuple[str, ...], value: str) -> bool:
    return all(re.fullmatch(rx, value, flags=re.DOTALL) for rx in regexes)


@dataclass(frozen=True)
class Uri:
    """Pydantic annotation: a URI with one of `schemes` ('/' for a mounted path). A pvc:// URI names a
    PersistentVolumeClaim and a configmap:// one a ConfigMap and its key, in the object's namespace: those
    names are checked as names. `prefix_message` says which schemes the field takes."""

    schemes: tuple[str, ...]
    prefix_message: str
    max_length: int = 2048

    def _prefix_rule(self) -> str:
        return " || ".join(f"self.startsWith('{s}')" for s in self.schemes)

    def problem(self, value: str) -> str | None:
        if not value.startswith(self.schemes):
            return self.prefix_message
        for scheme, (regexes, message) in _SCHEME_RULES.items():
            if scheme in self.schemes and value.startswith(scheme) and not _matches_all(regexes, value):
                return message
        return None

    def _validate(self, value: str) -> str:
        problem = self.problem(value)
        if problem is not None:
            raise PydanticCustomError("uri", "{value} is not valid: {rule}", {"value": _shown(value), "rule": problem})
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self._validate, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        out = handler(schema)
        out["maxLength"] = self.max_length
        rules = out.setdefault("x-kubernetes-validations", [])
        rules.append({"rule": self._prefix_rule(), "message": self.prefix_message})
        for scheme, (regexes, message) in _SCHEME_RULES.items():
            if scheme in self.schemes:
                # RE2's '.' does not match a newline unless (?s): as Python's re.DOTALL above
                matches = " && ".join(f"self.matches('(?s)^(?:{rx})$')" for rx in regexes)
                rules.append({"rule": f"!self.startsWith('{scheme}') || ({matches})", "message": message})
        return out


# --------------------------------------------------------------------------- the clients' check


class InvalidPathName(ValueError):
    """A name or namespace that is not a Kubernetes name: no request is sent with it."""


def check_path_name(value: object, what: str, fmt: NameFormat = DNS1123_SUBDOMAIN) -> str:
    """`value` as it may go into an API URL path, else InvalidPathName: the client library joins path
    segments unescaped, so '..', 'a/b' or '%2F' in a name would address another object, namespace or kind.
    Names are DNS-1123 subdomains (what every kind AdapterOps touches requires), namespaces DNS-1123 labels."""
    if not isinstance(value, str) or not fmt.is_valid(value):
        shown = _shown(value) if isinstance(value, str) else repr(value)
        raise InvalidPathName(f"refusing to put {what} {shown} into a request: it is not {fmt.describe()}")
    return value


def check_object_path(kind: str, namespace: str | None, name: str | None) -> None:
    """`check_path_name` for the namespace (a DNS-1123 label) and name of an object of `kind`; None is
    left out of the URL by the client, so it passes."""
    if namespace is not None:
        check_path_name(namespace, f"{kind} namespace", DNS1123_LABEL)
    if name is not None:
        check_path_name(name, f"{kind} name")


# --------------------------------------------------------------------------- derived names

HASH_LENGTH = 8


def short_hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:HASH_LENGTH]


def child_name(owner: str, suffix: str, limit: int) -> str:
    """`owner + suffix` when it fits in `limit` characters; else the owner's name cut short, a hash of the
    whole of it, and the suffix (kept whole: it carries what else the name derives from). The result
    starts as the owner's name does, so a DNS-1035 owner gives a DNS-1035 child."""
    if len(owner) + len(suffix) <= limit:
        return owner + suffix
    keep = limit - len(suffix) - HASH_LENGTH - 1
    assert keep >= 1, f"no room for a name in {limit} characters with suffix {suffix!r}"
    return f"{owner[:keep].rstrip('-.')}-{short_hash(owner)}{suffix}"


def claim_volume_name(claim: str) -> str:
    """The pod volume (a DNS-1123 label, at most 63 characters) of a PersistentVolumeClaim (a DNS-1123
    subdomain: may be longer or hold dots): `pvc-<claim>`, else a cut and dot-free form plus its hash."""
    name = f"pvc-{claim}"
    if DNS1123_LABEL.is_valid(name):
        return name
    stem = claim.replace(".", "-")[: DNS1123_LABEL.max_length - len("pvc-") - HASH_LENGTH - 1].rstrip("-")
    return f"pvc-{stem}-{short_hash(claim)}"
