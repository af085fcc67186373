package bus

// LeaseWithHolder is Lease with a given holder id: the same process' lease
// after the Lease value that held it is gone.
func LeaseWithHolder(b *Bus, name, holder string) *Lease {
	l := b.Lease(name)
	l.holder = holder
	return l
}
