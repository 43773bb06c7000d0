// Command etcd is etcd's own server entry point, built here so that the test control plane comes from the Go
// module proxy like everything else.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
