#!/usr/bin/env bash
# Builds the release artefacts of rivet-gateway into $DIST/$VERSION/
# (`make release`: dist/<version>/), fresh each time:
#
#   rivet-gateway-<version>-<os>-<arch>           static binary: CGO_ENABLED=0, -trimpath,
#                                                 stripped, `-version` prints <version>
#   rivet-gateway-<version>-<os>-<arch>.cdx.json  its SBOM, CycloneDX 1.6 JSON, made from the
#                                                 module list the Go toolchain embedded in it
#   SHA256SUMS                                    every file above (sha256sum -c SHA256SUMS)
#
# The build is the Dockerfile's (deploy/Dockerfile). With the same Go
# toolchain, the same commit gives byte-identical binaries and SBOMs (no
# timestamps or serial numbers in them), so anyone can check SHA256SUMS by
# rebuilding.
#
# usage: scripts/release.sh
# env:   VERSION  default: git describe --tags --always --dirty (what `make build` stamps)
#        TARGETS  default: "linux/amd64 linux/arm64 darwin/amd64 darwin/arm64"
#        DIST     default: dist
set -euo pipefail
cd "$(dirname "$0")/.."

# The SBOM tool, pinned; `go run` fetches it through the module proxy and
# verifies it against the checksum database.
cyclonedx_gomod=github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@v1.10.0

VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || true)}
TARGETS=${TARGETS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64}
DIST=${DIST:-dist}

if [ -z "$VERSION" ]; then
	echo "release: no version: this is not a git checkout; set VERSION" >&2
	exit 2
fi
if ! [[ $VERSION =~ ^[A-Za-z0-9][A-Za-z0-9._+-]*$ ]]; then
	echo "release: VERSION $VERSION: want letters, digits and . _ + - only (it names files)" >&2
	exit 2
fi
case $VERSION in
*-dirty) echo "release: warning: the work tree has uncommitted changes; the version says so ($VERSION)" >&2 ;;
esac
known=$(go tool dist list)
for t in $TARGETS; do
	if ! grep -qx -- "$t" <<<"$known"; then
		echo "release: target $t: not a GOOS/GOARCH pair Go knows (go tool dist list)" >&2
		exit 2
	fi
done

out="$DIST/$VERSION"
rm -rf -- "$out"
mkdir -p -- "$out"

files=()
for t in $TARGETS; do
	os=${t%/*} arch=${t#*/}
	bin="rivet-gateway-$VERSION-$os-$arch"
	echo "release: $out/$bin" >&2
	CGO_ENABLED=0 GOOS=$os GOARCH=$arch \
		go build -trimpath -ldflags "-s -w -X main.version=$VERSION" -o "$out/$bin" ./cmd/rivet-gateway
	# From the binary's embedded build info (the modules and versions
	# actually linked in, with their go.sum hashes), not from go.mod.
	# No -licenses: license detection downloads every module, the main
	# one too, which is not published.
	# The tool is built -trimpath and without cgo, so its own hash, which
	# the SBOM records, is the same on every machine with this Go.
	CGO_ENABLED=0 go run -trimpath "$cyclonedx_gomod" bin -json -noserial -notimestamp \
		-version "$VERSION" -output "$out/$bin.cdx.json" "$out/$bin"
	files+=("$bin" "$bin.cdx.json")
done

if command -v sha256sum >/dev/null; then
	sha() { sha256sum -- "$@"; }
else
	sha() { shasum -a 256 -- "$@"; } # macOS
fi
(cd "$out" && sha "${files[@]}" >SHA256SUMS)
echo "release: $out/SHA256SUMS" >&2
