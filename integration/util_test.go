package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
)

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
