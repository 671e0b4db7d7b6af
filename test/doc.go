// Package test holds argovisor's KVM integration tests: real guest kernels
// from guest/examples and guest/fixtures booted as real KVM domains,
// through the library API and through the argovisor binary. They need
// /dev/kvm; where it is absent they skip loudly, except under CI (CI set
// in the environment), where a missing /dev/kvm is a failure.
package test
