package config_test

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/xmppgw/xmppgw/config"
)

func ExampleLoad() {
	fset := pflag.NewFlagSet("xmppgw", pflag.ContinueOnError)
	config.RegisterFlags(fset)
	// In main: fset.Parse(os.Args[1:]) and Env left nil for os.Environ().
	if err := fset.Parse([]string{"--log-level", "debug", "--set", "gateways.sms.secret=s3cret"}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	c, err := config.Load(config.Options{
		Flags: fset,
		Env: []string{
			"XMPPGW_GATEWAYS__SMS__DOMAIN=sms.example.com",
			"XMPPGW_GATEWAYS__SMS__ADAPTER=sandbox",
		},
		AdapterSchema: func(id string) (func() any, bool) { return nil, id == "sandbox" },
		KnownAdapters: []string{"sandbox"},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	sms := c.Gateways["sms"]
	fmt.Println(c.Log.Level, sms.ServerAddr(*c), sms.AllowedDomains)
	// Output: debug 127.0.0.1:5347 [example.com]
}
