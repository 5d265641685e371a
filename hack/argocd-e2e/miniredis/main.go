// miniredis serves an in-memory Redis (github.com/alicebob/miniredis, the one Argo CD's own
// `argocd --core` mode runs in-process) on 127.0.0.1 for the Argo CD end-to-end test: the application
// controller and the repo server need a Redis for their caches. It prints the address on stdout and
// serves until it is signalled.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/alicebob/miniredis/v2"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	flag.Parse()
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr(*addr); err != nil {
		fmt.Fprintln(os.Stderr, "miniredis:", err)
		os.Exit(1)
	}
	fmt.Println(m.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	m.Close()
}
