package main

import "github.com/sluicedev/sluice/plugins/sdk"

func main() {
	var r redactor
	sdk.Serve(r.plugin(), sdk.WithConfig(&r.cfg))
}
