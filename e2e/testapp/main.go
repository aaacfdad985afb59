// Command testapp is the application service of the ai-up end-to-end tests:
// the only program of a tiny image (static, built with CGO_ENABLED=0), so
// the tests need no image from a registry and no busybox from the machine.
//
//	testapp serve [-p PORT] [-h DIR]   serve DIR (default /www) over HTTP on PORT (default 8080)
//	testapp false                      exit 1 (a healthcheck that never passes)
//	testapp cat FILE...                print the files
//	testapp nslookup NAME              print NAME's addresses; exit 1 when it does not resolve
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		os.Args = append(os.Args, "serve")
	}
	if err := run(os.Args[1], os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "testapp:", err)
		os.Exit(1)
	}
}

func run(cmd string, args []string) error {
	switch cmd {
	case "serve":
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		port := fs.String("p", "8080", "port")
		dir := fs.String("h", "/www", "folder to serve")
		if err := fs.Parse(args); err != nil {
			return err
		}
		return http.ListenAndServe(":"+*port, http.FileServer(http.Dir(*dir)))
	case "false":
		os.Exit(1)
	case "cat":
		for _, name := range args {
			f, err := os.Open(name)
			if err != nil {
				return err
			}
			_, err = io.Copy(os.Stdout, f)
			_ = f.Close()
			if err != nil {
				return err
			}
		}
		return nil
	case "nslookup":
		if len(args) != 1 {
			return fmt.Errorf("nslookup takes one name")
		}
		addrs, err := net.LookupHost(args[0])
		if err != nil {
			return err
		}
		for _, a := range addrs {
			fmt.Println(a)
		}
		return nil
	}
	return fmt.Errorf("unknown command %q (serve, false, cat, nslookup)", cmd)
}
