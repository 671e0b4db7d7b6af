package kvm

import (
	"errors"

	"golang.org/x/sys/unix"
)

// retry runs a configuration ioctl again while it fails with EINTR. Go's
// runtime preempts goroutines with signals, and a slow ioctl such as
// KVM_CREATE_VM can be interrupted by one; unlike KVM_RUN (which is never
// retried here: EINTR is how a vCPU is kicked), these have no side effect
// when they return EINTR and are safe to repeat.
func retry(f func() error) error {
	for {
		err := f()
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// retryVal is retry for ioctls that return a value.
func retryVal[T any](f func() (T, error)) (T, error) {
	for {
		v, err := f()
		if !errors.Is(err, unix.EINTR) {
			return v, err
		}
	}
}
