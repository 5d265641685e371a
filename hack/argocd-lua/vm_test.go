package main

import (
	"strings"
	"testing"
)

// The harness's VM behaves as Argo CD's does in the ways the checks depend on.

func TestHealthReturnsTable(t *testing.T) {
	obj := map[string]any{"status": map[string]any{"phase": "ok"}, "metadata": map[string]any{"generation": int64(3)}}
	for _, mode := range Modes {
		hs, err := Health(mode, obj, `return {status = "Healthy", message = obj.status.phase .. " " .. obj.metadata.generation}`)
		if err != nil || hs != (HealthStatus{Status: "Healthy", Message: "ok 3"}) {
			t.Fatalf("[%s] got %+v, %v", mode, hs, err)
		}
		hs, err = Health(mode, obj, `return {status = "Fine"}`)
		if err != nil || hs != (HealthStatus{Status: "Unknown", Message: invalidHealthMessage}) {
			t.Fatalf("[%s] invalid status: got %+v, %v", mode, hs, err)
		}
		if _, err := Health(mode, obj, `return "Healthy"`); err == nil || !strings.Contains(err.Error(), "expect table output") {
			t.Fatalf("[%s] non-table result: got %v", mode, err)
		}
	}
}

func TestLibraries(t *testing.T) {
	obj := map[string]any{}
	if _, err := Health(ModeConfigMap, obj, `return {status = string.upper("x")}`); err == nil {
		t.Fatal("argocd-cm scripts have no string library unless useOpenLibs")
	}
	if hs, err := Health(ModeBuiltIn, obj, `return {status = string.upper("healthy") == "HEALTHY" and "Healthy" or "Degraded"}`); err != nil || hs.Status != "Healthy" {
		t.Fatalf("built-in scripts have the string library: %+v %v", hs, err)
	}
	for _, mode := range Modes {
		if _, err := Health(mode, obj, `return {status = os.getenv("HOME")}`); err == nil {
			t.Fatalf("[%s] no global os", mode)
		}
		if _, err := Health(mode, obj, `local os = require("os"); return {status = os.execute and "Degraded" or "Healthy"}`); err != nil {
			t.Fatalf("[%s] require(\"os\") gives the safe subset: %v", mode, err)
		}
		if _, err := Health(mode, obj, `table.insert({}, 1); return {status = "Healthy"}`); err != nil {
			t.Fatalf("[%s] table library: %v", mode, err)
		}
	}
}

func TestDeadline(t *testing.T) {
	if _, err := Health(ModeConfigMap, map[string]any{}, `while true do end`); err == nil {
		t.Fatal("a script that never ends is stopped")
	}
}

func TestDiscoveryShapes(t *testing.T) {
	for _, mode := range Modes {
		got, err := Discover(mode, map[string]any{}, `return {}`)
		if err != nil || len(got) != 0 {
			t.Fatalf("[%s] empty table is no action: %+v %v", mode, got, err)
		}
		got, err = Discover(mode, map[string]any{}, `a = {}; a["go"] = {}; a["stop"] = {disabled = true}; return a`)
		got = sortedActions(got)
		if err != nil || len(got) != 2 || got[0] != (ResourceAction{Name: "go"}) || got[1] != (ResourceAction{Name: "stop", Disabled: true}) {
			t.Fatalf("[%s] got %+v %v", mode, got, err)
		}
	}
}

func TestActionKeepsEmptyMaps(t *testing.T) {
	obj := map[string]any{"spec": map[string]any{"selector": map[string]any{}, "n": 1.0}}
	out, err := Act(ModeConfigMap, obj, `obj.spec.n = 2; return obj`)
	if err != nil || len(out) != 1 || out[0].Operation != "patch" {
		t.Fatalf("got %+v %v", out, err)
	}
	spec := out[0].Resource["spec"].(map[string]any)
	if _, ok := spec["selector"].(map[string]any); !ok || spec["n"] != 2.0 {
		t.Fatalf("an empty map stays a map: %#v", spec)
	}
}
