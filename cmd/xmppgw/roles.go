package main

import "github.com/xmppgw/xmppgw/config"

// parts is what a process runs of each gateway, by its role.
type parts struct {
	component bool // the XEP-0114 stream (one active process per gateway)
	workers   bool // adapters consuming the outbound stream
	ingress   bool // the adapters' webhooks
}

func partsOf(role string) parts {
	switch role {
	case config.RoleComponent:
		return parts{component: true}
	case config.RoleAdapters:
		return parts{workers: true}
	case config.RoleIngress:
		return parts{ingress: true}
	}
	return parts{component: true, workers: true, ingress: true}
}
