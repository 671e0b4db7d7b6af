//go:build !lockdebug

package hsync

const debugEnabled = false

// holders is empty without the lockdebug tag: no counters, no cost.
type holders struct{}

func (*holders) addWriter()     {}
func (*holders) delWriter()     {}
func (*holders) addReader()     {}
func (*holders) delReader()     {}
func (*holders) isWriter() bool { return true }
func (*holders) isAny() bool    { return true }
func (*holders) assertWriter()  {}
func (*holders) assertAny()     {}

// Assert does nothing without the lockdebug tag.
func Assert(bool, string) {}
