package repo

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/ultramcp/durable/fault"
)

// internalPrefixes are the address ranges a repository host may not be in
// unless ULTRAMCP_REPO_HOSTS names it: this host, the local network and
// the cloud metadata services live there.
var internalPrefixes = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
		"172.16.0.0/12", "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/3",
		"::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8", "64:ff9b::/96", "2001:db8::/32",
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// addressClass names the range an internal address is in, or "" for a
// public one.
func addressClass(a netip.Addr) string {
	a = a.Unmap()
	switch {
	case a.IsLoopback():
		return "a loopback address"
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return "a link-local address"
	case a.IsPrivate():
		return "a private address"
	case a.IsUnspecified():
		return "an unspecified address"
	}
	for _, p := range internalPrefixes {
		if p.Contains(a) {
			return "an internal address"
		}
	}
	return ""
}

// numericHost reports a host that resolvers read as an IPv4 address
// although it is not written as one ("2130706433", "0x7f.1", "127.1"):
// no top-level domain is numeric, so a numeric last label means an address.
func numericHost(h string) bool {
	last := h[strings.LastIndexByte(h, '.')+1:]
	if last == "" {
		return false
	}
	if strings.HasPrefix(last, "0x") || strings.HasPrefix(last, "0X") {
		return true
	}
	return strings.Trim(last, "0123456789") == ""
}

// hostAllowed checks a host as written, before any lookup: literal
// addresses against the policy, numeric forms refused outright. It reports
// whether the host is a name that still needs checking once resolved.
func (p Policy) hostAllowed(host string) (name bool, err error) {
	h := strings.ToLower(strings.Trim(host, "[]"))
	if a, perr := netip.ParseAddr(h); perr == nil {
		return false, p.addrAllowed(h, a)
	}
	if numericHost(h) {
		return false, fault.Invalidf("repository", "host %q is not a valid name or address", h)
	}
	return true, nil
}

func (p Policy) listed(s string) bool {
	for _, h := range p.Hosts {
		if strings.EqualFold(strings.Trim(h, "[]"), s) {
			return true
		}
	}
	return false
}

func (p Policy) addrAllowed(host string, a netip.Addr) error {
	if p.listed(a.Unmap().String()) || p.listed(host) {
		return nil
	}
	if len(p.Hosts) > 0 {
		return fault.Invalidf("repository", "host %s is not in ULTRAMCP_REPO_HOSTS", host)
	}
	if class := addressClass(a); class != "" {
		shown := host
		if a.Unmap().String() != host {
			shown = fmt.Sprintf("%s (%s)", host, a.Unmap())
		}
		return fault.Invalidf("repository", "host %s is %s; list it in ULTRAMCP_REPO_HOSTS to allow it", shown, class)
	}
	return nil
}

// pin resolves host and checks every address it has, so that git connects
// only to addresses checked here: the caller hands them to git in place of
// the name (DNS rebinding gets no second lookup to answer differently).
func (p Policy) pin(ctx context.Context, host string) ([]netip.Addr, error) {
	name, err := p.hostAllowed(host)
	if err != nil {
		return nil, err
	}
	h := strings.ToLower(strings.Trim(host, "[]"))
	if !name {
		return []netip.Addr{netip.MustParseAddr(h).Unmap()}, nil
	}
	if len(p.Hosts) > 0 && !p.listed(h) {
		return nil, fault.Invalidf("repository", "host %s is not in ULTRAMCP_REPO_HOSTS", h)
	}
	addrs, err := p.lookup(ctx, h)
	if err != nil {
		return nil, err
	}
	if p.listed(h) {
		return addrs, nil
	}
	for _, a := range addrs {
		if class := addressClass(a); class != "" {
			return nil, fault.Invalidf("repository", "host %s resolves to %s, %s; list it in ULTRAMCP_REPO_HOSTS to allow it", h, a, class)
		}
	}
	return addrs, nil
}

func (p Policy) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	lookup := p.Lookup
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	addrs, err := lookup(ctx, host)
	if err != nil || len(addrs) == 0 {
		return nil, fault.New(fault.NotFound, "repository host %s not found", host)
	}
	for i := range addrs {
		addrs[i] = addrs[i].Unmap()
	}
	return addrs, nil
}
