package main

import "github.com/sluicedev/sluice/plugins/sdk"

func main() {
	var e enricher
	sdk.Serve(e.plugin(), sdk.WithConfig(&e.cfg))
}
