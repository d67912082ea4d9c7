package systemd

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Credentials are the secrets systemd hands a unit (systemd.exec(5),
// "Credentials"; systemd.io/CREDENTIALS): LoadCredential=NAME:FILE,
// LoadCredentialEncrypted=, SetCredential= and ImportCredential= each
// put a file named NAME in a directory of the unit's own, which
// $CREDENTIALS_DIRECTORY names. systemd reads the source as root before the
// service starts, so the source can stay readable by root alone; the copy
// is readable by the service's user only, is never in the environment or
// on the command line, and is gone when the service stops.
type Credentials struct {
	// Dir is $CREDENTIALS_DIRECTORY; "" when the unit has no credentials.
	Dir string
}

// ErrNoCredential is wrapped by Read when the unit was given no credential
// of that name.
var ErrNoCredential = errors.New("no such credential")

// Read returns the credential NAME without trailing white space (a file
// written with echo ends in a newline). A missing credential, and an empty
// one, is ErrNoCredential, with what to put in the unit; any other error
// (an unreadable file) is returned as it is, for the caller to fail on.
func (c Credentials) Read(name string) (string, error) {
	if name == "" || strings.ContainsRune(name, '/') {
		return "", fmt.Errorf("credential %q: not a credential name", name)
	}
	if c.Dir == "" {
		return "", fmt.Errorf("credential %s: %w ($CREDENTIALS_DIRECTORY is not set): give the unit LoadCredential=%s:FILE, or run with CREDENTIALS_DIRECTORY=DIR and the secret in DIR/%s", name, ErrNoCredential, name, name)
	}
	path := filepath.Join(c.Dir, name)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("credential %s: %w in %s: give the unit LoadCredential=%s:FILE (or LoadCredentialEncrypted=, ImportCredential=)", name, ErrNoCredential, c.Dir, name)
	}
	if err != nil {
		return "", fmt.Errorf("credential %s: %w", name, err)
	}
	b = bytes.TrimRight(b, " \t\r\n")
	if len(b) == 0 {
		return "", fmt.Errorf("credential %s: %w: %s is empty; the file LoadCredential=%s:FILE names must hold it", name, ErrNoCredential, path, name)
	}
	return string(b), nil
}
