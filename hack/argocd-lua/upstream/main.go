// Command upstream runs AdapterOps' Argo CD checks in Argo CD's own code (github.com/argoproj/argo-cd/v3
// util/lua and util/settings, v3.6.1): the committed manifests/argocd/argocd-cm.yaml is read by Argo CD's
// SettingsManager (against a fake clientset) into resource overrides, exactly as a running Argo CD reads
// its argocd-cm; every case of the health_test.yaml and action_test.yaml files is then evaluated by Argo
// CD's lua.VM (GetHealthScript/ExecuteHealthLua, GetResourceActionDiscovery/ExecuteResourceActionDiscovery,
// GetResourceAction/ExecuteResourceAction), and once more as built-in scripts (UseOpenLibs).
//
// A cross-check of hack/argocd-lua (which re-creates that VM on Go 1.26 without Argo CD): Argo CD v3.6
// needs Go 1.27, so this module is built with GOTOOLCHAIN=go1.27.3 (see hack/argocd-lua-upstream.sh).
//
//	go run . ../../../manifests/argocd
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"github.com/argoproj/argo-cd/v3/common"
	appv1 "github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	argolua "github.com/argoproj/argo-cd/v3/util/lua"
	"github.com/argoproj/argo-cd/v3/util/settings"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"
)

type healthTests struct {
	Tests []struct {
		InputPath    string `json:"inputPath"`
		HealthStatus struct {
			Status  string `json:"status"`
			Message string `json:"message"`
		} `json:"healthStatus"`
	} `json:"tests"`
}

type actionTests struct {
	DiscoveryTests []struct {
		InputPath string                 `json:"inputPath"`
		Result    []appv1.ResourceAction `json:"result"`
	} `json:"discoveryTests"`
	ActionTests []struct {
		Action             string `json:"action"`
		InputPath          string `json:"inputPath"`
		ExpectedOutputPath string `json:"expectedOutputPath"`
	} `json:"actionTests"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: upstream MANIFESTS_ARGOCD_DIR")
		os.Exit(2)
	}
	dir := os.Args[1]
	overrides, err := readOverrides(filepath.Join(dir, "argocd-cm.yaml"))
	must(err)
	passed, failed := 0, 0
	report := func(name string, problems []string) {
		if len(problems) == 0 {
			passed++
			fmt.Println("PASS", name)
			return
		}
		failed++
		fmt.Println("FAIL", name)
		for _, p := range problems {
			fmt.Println("  " + strings.ReplaceAll(p, "\n", "\n  "))
		}
	}
	root := filepath.Join(dir, "resource_customizations")
	kinds, _ := filepath.Glob(filepath.Join(root, "*", "*"))
	for _, kindDir := range kinds {
		rel, _ := filepath.Rel(root, kindDir)
		var ht healthTests
		must(readYAML(filepath.Join(kindDir, "health_test.yaml"), &ht))
		for _, tc := range ht.Tests {
			obj := readObj(filepath.Join(kindDir, tc.InputPath))
			var problems []string
			for _, vm := range vms(overrides) {
				script, useOpenLibs, err := vm.GetHealthScript(obj)
				if err != nil || script == "" {
					problems = append(problems, fmt.Sprintf("%s: no health script (%v)", mode(vm), err))
					continue
				}
				vm.UseOpenLibs = vm.UseOpenLibs || useOpenLibs
				hs, err := vm.ExecuteHealthLua(obj, script)
				if err != nil {
					problems = append(problems, fmt.Sprintf("%s: %v", mode(vm), err))
					continue
				}
				if string(hs.Status) != tc.HealthStatus.Status || hs.Message != tc.HealthStatus.Message {
					problems = append(problems, fmt.Sprintf("%s: got %s %q, want %s %q", mode(vm), hs.Status, hs.Message, tc.HealthStatus.Status, tc.HealthStatus.Message))
				}
			}
			report(rel+"/health "+tc.InputPath, problems)
		}
		if _, err := os.Stat(filepath.Join(kindDir, "actions", "action_test.yaml")); os.IsNotExist(err) {
			continue // a kind with a health check and no actions (ServingProfile)
		}
		var at actionTests
		must(readYAML(filepath.Join(kindDir, "actions", "action_test.yaml"), &at))
		for _, tc := range at.DiscoveryTests {
			obj := readObj(filepath.Join(kindDir, "actions", tc.InputPath))
			var problems []string
			for _, vm := range vms(overrides) {
				scripts, err := vm.GetResourceActionDiscovery(obj)
				if err != nil {
					problems = append(problems, fmt.Sprintf("%s: %v", mode(vm), err))
					continue
				}
				got, err := vm.ExecuteResourceActionDiscovery(obj, scripts)
				if err != nil {
					problems = append(problems, fmt.Sprintf("%s: %v", mode(vm), err))
					continue
				}
				if !reflect.DeepEqual(sorted(got), sorted(tc.Result)) {
					problems = append(problems, fmt.Sprintf("%s: got %+v, want %+v", mode(vm), sorted(got), sorted(tc.Result)))
				}
			}
			report(rel+"/discovery "+tc.InputPath, problems)
		}
		for _, tc := range at.ActionTests {
			obj := readObj(filepath.Join(kindDir, "actions", tc.InputPath))
			want := readObj(filepath.Join(kindDir, "actions", tc.ExpectedOutputPath))
			var problems []string
			for _, vm := range vms(overrides) {
				def, err := vm.GetResourceAction(obj, tc.Action)
				if err != nil || def.ActionLua == "" {
					problems = append(problems, fmt.Sprintf("%s: no action %s (%v)", mode(vm), tc.Action, err))
					continue
				}
				out, err := vm.ExecuteResourceAction(obj.DeepCopy(), def.ActionLua, nil)
				if err != nil {
					problems = append(problems, fmt.Sprintf("%s: %v", mode(vm), err))
					continue
				}
				if len(out) != 1 || out[0].K8SOperation != argolua.PatchOperation {
					problems = append(problems, fmt.Sprintf("%s: want one patch, got %d results", mode(vm), len(out)))
					continue
				}
				if !reflect.DeepEqual(normalize(out[0].UnstructuredObj.Object), normalize(want.Object)) {
					problems = append(problems, fmt.Sprintf("%s: output differs from %s", mode(vm), tc.ExpectedOutputPath))
				}
			}
			report(rel+"/action "+tc.Action+" "+tc.InputPath, problems)
		}
	}
	fmt.Printf("argo-cd v3.6.1 util/lua: %d passed, %d failed\n", passed, failed)
	if failed > 0 || passed == 0 {
		os.Exit(1)
	}
}

// readOverrides loads argocd-cm.yaml into a fake cluster and lets Argo CD's SettingsManager parse it.
func readOverrides(path string) (map[string]appv1.ResourceOverride, error) {
	var cm corev1.ConfigMap
	if err := readYAML(path, &cm); err != nil {
		return nil, err
	}
	cm.Namespace = "argocd"
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: common.ArgoCDSecretName, Namespace: "argocd",
		Labels: map[string]string{"app.kubernetes.io/part-of": "argocd"}}}
	client := fake.NewSimpleClientset(&cm, secret)
	mgr := settings.NewSettingsManager(context.Background(), client, "argocd")
	overrides, err := mgr.GetResourceOverrides()
	if err != nil {
		return nil, err
	}
	for _, key := range []string{"adapterops.io/FineTuneJob", "adapterops.io/ModelDeployment"} {
		if o, ok := overrides[key]; !ok || o.HealthLua == "" || o.Actions == "" {
			return nil, fmt.Errorf("argocd-cm gives no health check and actions for %s (keys: %v)", key, keys(overrides))
		}
	}
	return overrides, nil
}

// vms: as argocd-cm scripts run (no standard libraries unless useOpenLibs), and as built-in ones.
func vms(overrides map[string]appv1.ResourceOverride) []argolua.VM {
	return []argolua.VM{
		{ResourceOverrides: overrides},
		{ResourceOverrides: overrides, UseOpenLibs: true},
	}
}

func mode(vm argolua.VM) string {
	if vm.UseOpenLibs {
		return "[open libs]"
	}
	return "[argocd-cm]"
}

func readYAML(path string, into any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return yaml.Unmarshal(data, into)
}

func readObj(path string) *unstructured.Unstructured {
	obj := map[string]any{}
	must(readYAML(path, &obj))
	return &unstructured.Unstructured{Object: obj}
}

func normalize(obj map[string]any) map[string]any {
	var out map[string]any
	b, _ := json.Marshal(obj)
	_ = json.Unmarshal(b, &out)
	return out
}

func sorted(actions []appv1.ResourceAction) []appv1.ResourceAction {
	out := append([]appv1.ResourceAction{}, actions...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func keys(m map[string]appv1.ResourceOverride) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
