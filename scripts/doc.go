// Package scripts holds the repository's shell scripts: the demo, the fuzz
// runner and the checks `make lint` runs. It has no code; its tests run the
// scripts against throwaway git repositories.
package scripts
