// Package portmappertest provides fake userland proxies for tests of code
// that starts proxies through [portmapper.StartProxy] or [portmapper.Start].
//
// A fake is the test binary itself. [New] writes the wanted [Behavior]
// into a directory of the test's own ([testing.TB.TempDir]) and returns a
// path there that links to the running test executable. When the launcher
// runs that path, this package's init function recognises its name and the
// behaviour file beside it, and plays the proxy instead of running the
// tests. Importing the package is all a test needs: there is no program to
// build and no TestMain hook, and it works for callers that vendor their
// dependencies. The price is that each fake is a whole test binary, which
// starts more slowly than a small program (under -race, tens of
// milliseconds).
//
// Every fake records each launch, readable with [Fake.Launches]: the
// command line, the descriptors it inherited, what kind of socket fd 4 is,
// the signals it received and how it ended. When the test ends, every fake
// process still running is killed.
//
// Fakes run on Linux only; elsewhere [New] skips the test.
package portmappertest
