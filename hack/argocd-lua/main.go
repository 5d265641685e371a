// Command argocd-lua runs AdapterOps' Argo CD health checks and resource actions in Argo CD's Lua
// engine (gopher-lua, set up as Argo CD sets it up: see vm.go) against the test files beside them, in
// the layout of Argo CD's resource_customizations folder (see suite.go), and renders the argocd-cm
// entries that install them (see cm.go).
//
//	argocd-lua test [-v] DIR       run every health_test.yaml and action_test.yaml under DIR
//	argocd-lua argocd-cm DIR       print the argocd-cm patch for the scripts under DIR
//
// Argo CD itself is not built here (its gitops-engine module does not resolve from the Go module
// proxy; see manifests/argocd/README.md), so this harness re-creates its Lua VM set-up.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "test":
		fs := flag.NewFlagSet("test", flag.ExitOnError)
		verbose := fs.Bool("v", false, "print every case, not only failures")
		_ = fs.Parse(os.Args[2:])
		if fs.NArg() != 1 {
			usage()
		}
		os.Exit(test(fs.Arg(0), *verbose))
	case "argocd-cm":
		if len(os.Args) != 3 {
			usage()
		}
		out, err := ConfigMap(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Print(out)
	default:
		usage()
	}
}

func test(root string, verbose bool) int {
	var s Suite
	if err := s.Run(root); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	passed, failed := 0, 0
	for _, r := range s.Results {
		if len(r.Failed) == 0 {
			passed++
			if verbose {
				fmt.Printf("PASS %s\n", r.Name)
			}
			continue
		}
		failed++
		fmt.Printf("FAIL %s\n", r.Name)
		for _, f := range r.Failed {
			fmt.Printf("  %s\n", strings.ReplaceAll(f, "\n", "\n  "))
		}
	}
	fmt.Printf("argocd-lua: %d passed, %d failed\n", passed, failed)
	if failed > 0 || passed == 0 {
		return 1
	}
	return 0
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: argocd-lua test [-v] DIR | argocd-lua argocd-cm DIR")
	os.Exit(2)
}
