// Package scripts holds the repository's shell scripts: the demo, the fuzz
// runner, the release build (`make release`) and the checks `make lint`
// runs. It has no code; its tests run the scripts against throwaway git
// repositories, or (release.sh) into temp dirs.
package scripts
