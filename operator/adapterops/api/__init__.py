"""The AdapterOps API (`adapterops.io/v1alpha1`): FineTuneJob and ModelDeployment.

These pydantic models are the single source of truth: the generator (`hack/generate.py`) turns them
into the CRD YAML shipped in the chart and the kustomize base (descriptions, defaults and CEL rules
included), and the operator parses every object it reconciles with them.

CEL rules live next to the fields they guard (`cel(...)`); they hold every invariant that can be
checked on one object. What needs the cluster (GPU classes, queues, referenced jobs) is checked by
the operator and reported in the `Accepted` condition.

Modules: `kinds` (the table of kinds), `names` (Kubernetes name formats and the name types every
reference field uses), `common` (shared pieces), one module per kind.
"""
