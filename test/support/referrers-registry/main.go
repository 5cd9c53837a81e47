// A registry that serves the OCI 1.1 referrers API, for the tests: go-containerregistry's
// in-memory registry (Debian's docker-registry 2.8 has no such API). Built and started by
// test/support/referrers-registry.ts.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on; port 0 picks a free port")
	logRequests := flag.Bool("log-requests", false, "log every request on stderr")
	flag.Parse()

	// Bound here, by the process itself, so no other process can take the port between a
	// check and the bind; the test learns the port from the line printed below.
	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(listener.Addr().String())

	requestLog := io.Discard
	if *logRequests {
		requestLog = log.Writer()
	}
	handler := registry.New(
		registry.WithReferrersSupport(true),
		registry.Logger(log.New(requestLog, "", log.LstdFlags)),
	)
	log.Fatal(http.Serve(listener, handler))
}
