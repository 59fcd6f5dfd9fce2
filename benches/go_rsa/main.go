// Go's crypto/rsa on this machine, for benches/pki_vs_openssl.sh: for each
// size given (2048, 3072, 4096), seconds per generated key and PKCS#1 v1.5
// SHA-256 signatures per second, printed as "rsa<bits> <s/key> <sign/s>".
// Standard library only: `go run benches/go_rsa/main.go 2048 3072 4096`.
package main

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"os"
	"strconv"
	"time"
)

func main() {
	for _, arg := range os.Args[1:] {
		bits, err := strconv.Atoi(arg)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%q is not a key size\n", arg)
			os.Exit(2)
		}
		budget := 8 * time.Second
		var key *rsa.PrivateKey
		n := 0
		start := time.Now()
		for time.Since(start) < budget || n < 3 {
			key, err = rsa.GenerateKey(rand.Reader, bits)
			if err != nil {
				fmt.Fprintf(os.Stderr, "rsa%d: %v\n", bits, err)
				os.Exit(1)
			}
			n++
		}
		perKey := time.Since(start).Seconds() / float64(n)

		digest := sha256.Sum256([]byte("certweave"))
		signs := 0
		start = time.Now()
		for time.Since(start) < time.Second {
			if _, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:]); err != nil {
				fmt.Fprintf(os.Stderr, "rsa%d sign: %v\n", bits, err)
				os.Exit(1)
			}
			signs++
		}
		perSecond := float64(signs) / time.Since(start).Seconds()
		fmt.Printf("rsa%d %.9f %.1f\n", bits, perKey, perSecond)
	}
}
