// Package rails groups billflow's payment and messaging rails. Each rail is
// a subpackage with a small interface, a production implementation speaking
// the real protocol, and a sandbox under sandbox/ speaking the same protocol
// locally, so dev mode and tests exercise the real client code.
package rails
