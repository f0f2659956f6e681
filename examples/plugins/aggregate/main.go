package main

import "github.com/sluicedev/sluice/plugins/sdk"

func main() {
	a := newAggregator()
	sdk.Serve(a.plugin(), sdk.WithConfig(&a.cfg))
}
