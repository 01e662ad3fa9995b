package openapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os/exec"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// A document is loaded and checked first by a process of its own
// (Options.Checker running CheckMain) when a node has one: kin-openapi does
// not stop for a context, and a document can take it minutes to days to
// load (a long chain of $refs, many schemas each referring to one vast one)
// or all the memory there is. A process can be killed, a goroutine cannot.
// The checking process reads the document and the files it refers to,
// loads and checks them and says what it read; the node then loads those
// same bytes, and nothing else, itself: a document the node loads is one
// that was loaded within its time and memory already.

// checkMemory bounds the memory a process checking a document may map
// beyond what it maps as it starts (RLIMIT_AS): one whose loading needs
// more dies, and the document is refused.
var checkMemory int64 = 4 << 30

// maxCheckStderr bounds what is kept of a checking process's standard
// error, to tell a death for want of memory.
const maxCheckStderr = 4 << 10

// checkRequest is what a node sends a checking process on its standard
// input: a document's location and the APIs file's folder as load takes
// them, and a fetched document's bytes (no fetch is made by the checker).
type checkRequest struct {
	Location         string `json:"location"`
	Dir              string `json:"dir"`
	MaxDocumentBytes int64  `json:"max_document_bytes"`
	MaxMemory        int64  `json:"max_memory"`
	Data             []byte `json:"data,omitempty"`
}

// checkResult is what a checking process answers on its standard output:
// the files it read, by the path kin-openapi asked them by, or why the
// document was refused.
type checkResult struct {
	Error string            `json:"error,omitempty"`
	Files map[string][]byte `json:"files,omitempty"`
}

// CheckMain is the main of a process that checks a document for
// Options.Checker: it reads a request on stdin, answers on stdout, and
// returns the process's exit status (0 when it answered, the document
// refused or not).
func CheckMain(stdin io.Reader, stdout io.Writer) int {
	var req checkRequest
	if err := json.NewDecoder(stdin).Decode(&req); err != nil {
		fmt.Fprintf(stdout, `{"error":"the document's check: a request it cannot read"}`)
		return 2
	}
	if err := boundMemory(req.MaxMemory); err != nil {
		fmt.Fprintf(stdout, `{"error":"the document's check: its memory could not be bounded"}`)
		return 2
	}
	files := map[string][]byte{}
	var read openapi3.ReadFromURIFunc
	if !isURL(req.Location) {
		under := readUnder(docRoots(req.Location, req.Dir), req.MaxDocumentBytes)
		read = func(l *openapi3.Loader, u *url.URL) ([]byte, error) {
			b, err := under(l, u)
			if err == nil {
				files[u.String()] = b
			}
			return b, err
		}
	}
	var res checkResult
	if _, err := loadNow(context.Background(), req.Location, req.Dir, Options{MaxDocumentBytes: req.MaxDocumentBytes}, read, req.Data, false); err != nil {
		res.Error = err.Error()
	} else {
		res.Files = files
	}
	if err := json.NewEncoder(stdout).Encode(res); err != nil {
		return 2
	}
	return 0
}

// check runs the node's checking process on a document, within ctx, and
// returns what the document's loading may read (read), or why the
// document is refused.
func check(ctx context.Context, location, dir string, opts Options, data []byte) (openapi3.ReadFromURIFunc, error) {
	shown := shownLocation(location)
	in, err := json.Marshal(checkRequest{Location: location, Dir: dir, MaxDocumentBytes: opts.MaxDocumentBytes, MaxMemory: checkMemory, Data: data})
	if err != nil {
		return nil, err
	}
	cmd := opts.Checker(ctx)
	var out bytes.Buffer
	stderr := &boundedBuffer{max: maxCheckStderr}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(in), &out, stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("document %s: not loaded and checked within the time given (%w): refused, a document this costly to read would hold the node as long", shown, context.Cause(ctx))
		}
		if e := stderr.String(); strings.Contains(e, "out of memory") || strings.Contains(e, "cannot allocate memory") || strings.Contains(e, "failed to allocate") {
			return nil, fmt.Errorf("document %s: not loaded: its loading takes more than %d MiB of memory", shown, checkMemory>>20)
		}
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return nil, fmt.Errorf("document %s: not loaded: the process that checks it failed (%s)", shown, exit.ProcessState)
		}
		return nil, fmt.Errorf("document %s: not loaded: the process that checks it could not run: %w", shown, err)
	}
	var res checkResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return nil, fmt.Errorf("document %s: not loaded: the process that checks it answered what cannot be read", shown)
	}
	if res.Error != "" {
		return nil, errors.New(res.Error)
	}
	files := res.Files
	return func(_ *openapi3.Loader, u *url.URL) ([]byte, error) {
		b, ok := files[u.String()]
		if !ok {
			return nil, fmt.Errorf("$ref %s: not read when the document was checked", u.Redacted())
		}
		return b, nil
	}, nil
}

// boundedBuffer keeps the first max bytes written to it.
type boundedBuffer struct {
	bytes.Buffer
	max int
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
