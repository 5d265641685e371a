// Argo CD Lua test harness: runs AdapterOps' health checks and resource actions
// (manifests/argocd/resource_customizations) in gopher-lua, the Lua engine Argo CD embeds, set up the
// way Argo CD sets up its VM. See main.go and manifests/argocd/README.md. gopher-lua and gopher-json
// are pinned at the versions Argo CD v3.6.1 builds with (its go.mod).
module adapterops.io/hack/argocd-lua

go 1.26.0

require (
	github.com/yuin/gopher-lua v1.1.2
	layeh.com/gopher-json v0.0.0-20190114024228-97fed8db8427
	sigs.k8s.io/yaml v1.6.0
)

require go.yaml.in/yaml/v2 v2.4.2 // indirect
