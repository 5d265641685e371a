package main

// The Lua VM as Argo CD sets it up for health checks and resource actions (util/lua in
// argoproj/argo-cd), written afresh for this harness:
//
//   - gopher-lua; the object is the global `obj`, decoded from the unstructured map (numbers become
//     Lua numbers, lists become sequences, maps become string-keyed tables);
//   - the script's last value on the stack (what it returns) must be a table; it is encoded to JSON
//     with layeh.com/gopher-json, the encoder Argo CD uses, so an empty table is `[]`;
//   - scripts from argocd-cm run without Lua's standard libraries (SkipOpenLibs) unless the override
//     sets useOpenLibs: only package, base and table are opened. Built-in checks (the
//     resource_customizations folder compiled into Argo CD) run with every standard library open;
//   - each script gets a 1 second deadline.
//
// Argo CD also offers a "safe" os subset (time and date). This harness offers only require("os").time,
// and no global os or io at all, so that a script that passes here cannot lean on a library that one of the
// two set-ups lacks. AdapterOps' scripts use no os function: their result depends on the object only.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	lua "github.com/yuin/gopher-lua"
	luajson "layeh.com/gopher-json"
)

// Mode is how Argo CD would load a script.
type Mode int

const (
	// ModeConfigMap: a script from argocd-cm resource.customizations without useOpenLibs (the default there).
	ModeConfigMap Mode = iota
	// ModeBuiltIn: a script compiled into Argo CD from resource_customizations/ (all standard libraries).
	ModeBuiltIn
)

func (m Mode) String() string {
	if m == ModeBuiltIn {
		return "built-in"
	}
	return "argocd-cm"
}

// Modes are the two ways every script is run: it must behave the same in both.
var Modes = []Mode{ModeConfigMap, ModeBuiltIn}

// HealthStatus is Argo CD's health.HealthStatus as a script returns it.
type HealthStatus struct {
	Status  string `json:"status" yaml:"status"`
	Message string `json:"message,omitempty" yaml:"message,omitempty"`
}

// ResourceAction is one entry of what discovery.lua returns (Argo CD's ResourceAction, without params).
type ResourceAction struct {
	Name        string `json:"name" yaml:"name"`
	Disabled    bool   `json:"disabled,omitempty" yaml:"disabled,omitempty"`
	IconClass   string `json:"iconClass,omitempty" yaml:"iconClass,omitempty"`
	DisplayName string `json:"displayName,omitempty" yaml:"displayName,omitempty"`
}

// ImpactedResource is one entry of a new-style action's list result.
type ImpactedResource struct {
	Resource  map[string]any `json:"resource"`
	Operation string         `json:"operation"`
}

var validHealth = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true, "Healthy": true, "Degraded": true, "Missing": true,
}

const invalidHealthMessage = "Lua returned an invalid health status"

// run executes script with obj as the global `obj` and returns the script's result as JSON.
func run(mode Mode, obj map[string]any, script string) ([]byte, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: mode == ModeConfigMap})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return nil, fmt.Errorf("opening %s: %w", lib.name, err)
		}
	}
	l.SetGlobal(lua.OsLibName, lua.LNil)
	l.SetGlobal(lua.IoLibName, lua.LNil)
	if loaded, ok := l.GetField(l.Get(lua.RegistryIndex), "_LOADED").(*lua.LTable); ok {
		loaded.RawSetString(lua.OsLibName, lua.LNil)
		loaded.RawSetString(lua.IoLibName, lua.LNil)
	}
	l.PreloadModule(lua.OsLibName, func(l *lua.LState) int {
		mod := l.NewTable()
		l.SetField(mod, "time", l.NewFunction(func(l *lua.LState) int {
			l.Push(lua.LNumber(time.Now().Unix()))
			return 1
		}))
		l.Push(mod)
		return 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return nil, err
	}
	ret := l.Get(-1)
	if ret.Type() != lua.LTTable {
		return nil, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
	}
	return luajson.Encode(ret)
}

// toLua converts a decoded JSON/YAML value (and the integer types a live object carries) to Lua.
func toLua(l *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(x)
	case string:
		return lua.LString(x)
	case json.Number:
		return lua.LString(x)
	case float64:
		return lua.LNumber(x)
	case int:
		return lua.LNumber(x)
	case int32:
		return lua.LNumber(x)
	case int64:
		return lua.LNumber(x)
	case []any:
		t := l.CreateTable(len(x), 0)
		for _, item := range x {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(x))
		for k, item := range x {
			t.RawSetH(lua.LString(k), toLua(l, item))
		}
		return t
	}
	return lua.LNil
}

// Health runs a health.lua: a status outside Argo CD's set reads as Unknown, as in Argo CD.
func Health(mode Mode, obj map[string]any, script string) (HealthStatus, error) {
	out, err := run(mode, obj, script)
	if err != nil {
		return HealthStatus{}, err
	}
	var hs HealthStatus
	if err := json.Unmarshal(out, &hs); err != nil {
		return HealthStatus{}, fmt.Errorf("health result %s: %w", out, err)
	}
	if !validHealth[hs.Status] {
		return HealthStatus{Status: "Unknown", Message: invalidHealthMessage}, nil
	}
	return hs, nil
}

// Discover runs a discovery.lua: a map of action name -> {disabled, iconClass, displayName} (an empty
// table, encoded as [], is an enabled action without details; an empty result is no action).
func Discover(mode Mode, obj map[string]any, script string) ([]ResourceAction, error) {
	out, err := run(mode, obj, script)
	if err != nil {
		return nil, err
	}
	if string(out) == "[]" {
		return nil, nil
	}
	var entries map[string]json.RawMessage
	if err := json.Unmarshal(out, &entries); err != nil {
		return nil, fmt.Errorf("discovery result %s: %w", out, err)
	}
	actions := make([]ResourceAction, 0, len(entries))
	for name, raw := range entries {
		a := ResourceAction{Name: name}
		if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) {
			if err := json.Unmarshal(raw, &a); err != nil {
				return nil, fmt.Errorf("discovery entry %s: %w", name, err)
			}
			a.Name = name
		}
		actions = append(actions, a)
	}
	return actions, nil
}

// Act runs an action.lua. A returned object is an old-style action (a patch of obj); a returned list
// is a new-style one ({resource, operation} entries). As Argo CD does for patches, an empty table that
// was a map in obj is turned back into a map.
func Act(mode Mode, obj map[string]any, script string) ([]ImpactedResource, error) {
	out, err := run(mode, obj, script)
	if err != nil {
		return nil, err
	}
	trimmed := bytes.TrimSpace(out)
	if len(trimmed) < 2 {
		return nil, errors.New("Lua output was not a valid JSON object or array")
	}
	var impacted []ImpactedResource
	if trimmed[0] == '[' {
		if err := json.Unmarshal(trimmed, &impacted); err != nil {
			return nil, fmt.Errorf("action result %s: %w", trimmed, err)
		}
	} else {
		var patched map[string]any
		if err := json.Unmarshal(trimmed, &patched); err != nil {
			return nil, fmt.Errorf("action result %s: %w", trimmed, err)
		}
		impacted = []ImpactedResource{{Resource: patched, Operation: "patch"}}
	}
	for i := range impacted {
		if impacted[i].Operation == "patch" {
			impacted[i].Resource = restoreMaps(impacted[i].Resource, obj)
		}
	}
	return impacted, nil
}

// restoreMaps undoes the encoder's empty-table-is-a-list choice where the original had a map.
func restoreMaps(updated, original map[string]any) map[string]any {
	for key, was := range original {
		now, ok := updated[key]
		if !ok {
			continue
		}
		switch n := now.(type) {
		case map[string]any:
			if w, ok := was.(map[string]any); ok {
				updated[key] = restoreMaps(n, w)
			}
		case []any:
			switch w := was.(type) {
			case map[string]any:
				if len(n) == 0 {
					updated[key] = w
				}
			case []any:
				updated[key] = restoreList(n, w)
			}
		}
	}
	return updated
}

func restoreList(updated, original []any) []any {
	for i := range updated {
		if i >= len(original) {
			break
		}
		switch n := updated[i].(type) {
		case map[string]any:
			if w, ok := original[i].(map[string]any); ok {
				updated[i] = restoreMaps(n, w)
			}
		case []any:
			if w, ok := original[i].([]any); ok {
				updated[i] = restoreList(n, w)
			}
		}
	}
	return updated
}
