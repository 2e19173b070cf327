package authn

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// minRSABits is the smallest RSA modulus accepted, from PEM or JWKS.
const minRSABits = 2048

// algFamily is the key type an algorithm needs.
type algFamily uint8

const (
	familyHMAC algFamily = iota + 1
	familyRSA
	familyECDSA
	familyEdDSA
)

// algorithms maps each supported JWS algorithm to the key type it needs.
// "none" is deliberately absent.
var algorithms = map[string]algFamily{
	"HS256": familyHMAC, "HS384": familyHMAC, "HS512": familyHMAC,
	"RS256": familyRSA, "RS384": familyRSA, "RS512": familyRSA,
	"PS256": familyRSA, "PS384": familyRSA, "PS512": familyRSA,
	"ES256": familyECDSA, "ES384": familyECDSA, "ES512": familyECDSA,
	"EdDSA": familyEdDSA,
}

func algFamilyOf(alg string) (algFamily, bool) {
	f, ok := algorithms[alg]
	return f, ok
}

// hmacKeyLen is the least secret length for an HMAC algorithm: the hash
// size (RFC 7518 §3.2).
func hmacKeyLen(alg string) int {
	switch alg {
	case "HS384":
		return 48
	case "HS512":
		return 64
	}
	return 32
}

// minSecretLen is the least secret length for a set of algorithms.
func minSecretLen(algs []string) int {
	n := 32
	for _, a := range algs {
		if f, _ := algFamilyOf(a); f == familyHMAC {
			n = max(n, hmacKeyLen(a))
		}
	}
	return n
}

// keyFits reports whether key may verify a token signed with alg. This is
// the algorithm-confusion guard: the key's Go type must be the one alg
// needs, so an RSA public key is never handed to HMAC (whose "key" would
// be the public PEM an attacker knows), nor a P-256 key to ES512.
func keyFits(alg string, key any) bool {
	fam, ok := algFamilyOf(alg)
	if !ok {
		return false
	}
	switch k := key.(type) {
	case []byte:
		return fam == familyHMAC && len(k) >= hmacKeyLen(alg)
	case *rsa.PublicKey:
		return fam == familyRSA && k.N != nil && k.N.BitLen() >= minRSABits
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return k.Curve == elliptic.P256()
		case "ES384":
			return k.Curve == elliptic.P384()
		case "ES512":
			return k.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return fam == familyEdDSA && len(k) == ed25519.PublicKeySize
	}
	return false
}

// parsePublicKeys reads every PEM block of data: PUBLIC KEY (PKIX), RSA
// PUBLIC KEY (PKCS #1) or CERTIFICATE (its subject key; validity dates and
// chains are not checked: a certificate is only a key container here).
// Private keys are refused: the gateway needs, and should hold, only
// public halves.
func parsePublicKeys(data []byte) ([]any, error) {
	var keys []any
	for i := 1; ; i++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var key any
		var err error
		switch block.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				key = cert.PublicKey
			}
		default:
			if strings.Contains(block.Type, "PRIVATE") {
				return nil, fmt.Errorf("PEM block %d is a private key: give the public key or a certificate", i)
			}
			return nil, fmt.Errorf("PEM block %d: unsupported type %q", i, block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %d (%s): %w", i, block.Type, err)
		}
		if err := checkPublicKey(key); err != nil {
			return nil, fmt.Errorf("PEM block %d (%s): %w", i, block.Type, err)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM block found")
	}
	return keys, nil
}

func checkPublicKey(key any) error {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key of %d bits, want at least %d", k.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return errors.New("unsupported ECDSA curve")
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("unsupported key type %T", key)
	}
	return nil
}

// keyKind names a key's type for logs and errors.
func keyKind(key any) string {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA-" + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	case []byte:
		return "HMAC secret"
	}
	return fmt.Sprintf("%T", key)
}
