#!/usr/bin/env bash
# Fails when git tracks a binary file: an executable (ELF, Mach-O, PE) or
# any file git sees as binary, by its content (a NUL byte, as every
# executable format has) or by .gitattributes (`binary`, `-diff`). It reads
# the index, which is what a clean clone holds and what the next commit
# will, so a binary staged by mistake is caught before it is committed.
#
# Build outputs belong in .gitignore, not in the repository. A fixture that
# must stay binary goes in scripts/check-binaries.allow: one path per line,
# relative to the repository root, with a comment saying why.
#
# usage: scripts/check-binaries.sh   (from anywhere in the repository; `make lint` runs it)
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"

allow_file=scripts/check-binaries.allow
allowed=""
if [ -f "$allow_file" ]; then
	allowed=$(sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$allow_file")
fi

# The staged files git sees as binary. By content: git's own test of the
# blob, whatever the attributes say (`git ls-files --eol` prints
# "i/<eol> w/<eol> attr/<attr>\t<path>", with i/-text for binary content).
# By attributes: the files `git diff --numstat` counts as "-\t-".
empty_tree=$(git hash-object -t tree /dev/null)
binaries=$(
	{
		git ls-files -z --eol | tr '\0' '\n' | awk -F'\t' '$1 ~ /^i\/-text/ { print $2 }'
		git diff --cached --no-renames --no-ext-diff --numstat -z "$empty_tree" | tr '\0' '\n' |
			awk -F'\t' '$1 == "-" && $2 == "-" { print $3 }'
	} | LC_ALL=C sort -u
)

# what names the kind of binary $1 is: an executable format from the first
# bytes of the staged blob, else how git tells that it is binary.
what() {
	local magic
	magic=$(git cat-file blob ":$1" | od -An -tx1 -N4 | tr -d ' \n' || true)
	case $magic in
	7f454c46) echo "ELF executable" ;;
	feedface | feedfacf | cefaedfe | cffaedfe) echo "Mach-O executable" ;;
	cafebabe) echo "Mach-O universal binary or Java class" ;;
	4d5a*) echo "PE (Windows) executable" ;;
	*)
		case $(git ls-files --eol -- ":(literal)$1") in
		i/-text*) echo "binary content" ;;
		*) echo "binary by .gitattributes" ;;
		esac
		;;
	esac
}

found=0
while IFS= read -r path; do
	[ -n "$path" ] || continue
	if [ -n "$allowed" ] && printf '%s\n' "$allowed" | grep -Fxq -- "$path"; then
		continue
	fi
	echo "check-binaries: $path is tracked and binary ($(what "$path"), $(git cat-file -s ":$path") bytes)" >&2
	found=1
done <<<"$binaries"

if [ "$found" = 1 ]; then
	cat >&2 <<EOF
check-binaries: remove each file from git (git rm --cached PATH) and, if it is
a build output, ignore it in .gitignore; a fixture that must stay binary is
listed, with the reason, in $allow_file.
EOF
	exit 1
fi
