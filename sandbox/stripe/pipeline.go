package stripesandbox

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// apiRequest is what an endpoint sees of a request.
type apiRequest struct {
	r              *http.Request
	params         url.Values
	requestID      string
	idempotencyKey string
}

// response is an endpoint's answer, written by the pipeline so that it can
// be saved under an idempotency key and replayed byte for byte.
type response struct {
	status int
	body   []byte
	// unsaved marks answers Stripe does not keep under an idempotency key:
	// requests rejected by validation before the endpoint executed.
	unsaved bool
}

type apiFunc func(*apiRequest) response

// idemEntry is what Stripe keeps for one idempotency key.
type idemEntry struct {
	fingerprint string
	created     time.Time
	done        bool
	resp        response
	requestID   string
}

// idempotencyWindow is how long Stripe keeps a key.
const idempotencyWindow = 24 * time.Hour

// api wraps an endpoint in Stripe's request pipeline: request id, API key,
// injected failures, then the idempotency layer for POSTs.
func (s *Server) api(h apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := &apiRequest{r: r, requestID: newID("req")}
		w.Header().Set("Request-Id", req.requestID)
		w.Header().Set("Stripe-Version", s.opts.APIVersion)
		if ok, given := s.authorized(r); !ok {
			msg := "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."
			if given != "" {
				msg = "Invalid API Key provided: " + maskKey(given)
			}
			s.log.Info("stripe sandbox: unauthorized", "method", r.Method, "path", r.URL.Path)
			writeJSON(w, http.StatusUnauthorized, errorBody(invalidRequest("", msg)))
			return
		}
		params, err := readParams(r)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody(invalidRequest("", "Invalid request body: "+err.Error())))
			return
		}
		req.params = params
		s.mu.Lock()
		s.requests++
		s.mu.Unlock()

		fail := s.takeFailure(r)
		if fail != nil && !fail.AfterExecute {
			// The request is refused before Stripe executes it: nothing
			// happens and nothing is saved under its key.
			s.log.Info("stripe sandbox: injected failure", "method", r.Method, "path", r.URL.Path, "status", fail.Status, "disconnect", fail.Disconnect)
			if fail.Disconnect {
				disconnect(w)
				return
			}
			writeResponse(w, fail.response(), nil)
			return
		}

		key := r.Header.Get("Idempotency-Key")
		if r.Method != http.MethodPost || key == "" {
			resp := h(req)
			if fail != nil {
				resp = s.failAfter(fail, resp)
			}
			s.finish(w, r, fail, resp)
			return
		}
		req.idempotencyKey = key
		w.Header().Set("Idempotency-Key", key)
		fingerprint := r.Method + " " + r.URL.Path + "?" + params.Encode()

		s.mu.Lock()
		entry := s.idem[key]
		if entry != nil && s.now().Sub(entry.created) > idempotencyWindow {
			delete(s.idem, key)
			entry = nil
		}
		switch {
		case entry != nil && entry.fingerprint != fingerprint:
			s.mu.Unlock()
			writeJSON(w, http.StatusBadRequest, errorBody(apiError{Type: "idempotency_error",
				Message: "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '" + key + "' if you meant to execute a different request."}))
			return
		case entry != nil && !entry.done:
			s.mu.Unlock()
			writeJSON(w, http.StatusConflict, errorBody(apiError{Type: "idempotency_error", Code: "idempotency_key_in_use",
				Message: "There is currently another in-progress request using this idempotency key (that probably means you submitted twice, and the other request is still going through): " + key + ". Please try again later."}))
			return
		case entry != nil:
			resp, original := entry.resp, entry.requestID
			s.mu.Unlock()
			s.log.Info("stripe sandbox: idempotent replay", "method", r.Method, "path", r.URL.Path, "status", resp.status)
			writeResponse(w, resp, map[string]string{"Idempotent-Replayed": "true", "Original-Request": original})
			return
		}
		entry = &idemEntry{fingerprint: fingerprint, created: s.now(), requestID: req.requestID}
		s.idem[key] = entry
		s.mu.Unlock()

		resp := h(req)
		if fail != nil {
			resp = s.failAfter(fail, resp)
		}
		// Saved before anything is written, so a retry racing the answer
		// (or the lost answer) finds the outcome rather than "in use".
		s.mu.Lock()
		if resp.unsaved {
			delete(s.idem, key)
		} else {
			entry.done, entry.resp = true, resp
		}
		s.mu.Unlock()
		s.finish(w, r, fail, resp)
	})
}

// failAfter applies a failure injected after execution: the endpoint ran
// (and any charge happened). A status failure replaces the response, which
// is then what the idempotency key keeps, as Stripe keeps a 500 once
// execution began; a disconnect keeps the real response (see finish).
func (s *Server) failAfter(f *Failure, resp response) response {
	s.log.Info("stripe sandbox: injected failure after execution", "status", f.Status, "disconnect", f.Disconnect)
	if f.Disconnect {
		return resp
	}
	return f.response()
}

// finish writes the response, or loses it on the wire for an injected
// disconnect after execution.
func (s *Server) finish(w http.ResponseWriter, r *http.Request, fail *Failure, resp response) {
	// What a client is told is on disk first (Options.StateFile): a
	// restarted sandbox never forgets a charge it answered.
	if r.Method == http.MethodPost {
		if err := s.saveState(); err != nil {
			s.log.Error("stripe sandbox: saving state", "err", err)
			writeJSON(w, http.StatusInternalServerError, errorBody(apiError{Type: "api_error", Message: "sandbox: cannot save state"}))
			return
		}
	}
	if fail != nil && fail.Disconnect {
		disconnect(w)
		return
	}
	s.log.Info("stripe sandbox: request", "method", r.Method, "path", r.URL.Path, "status", resp.status)
	writeResponse(w, resp, nil)
}

// disconnect closes the connection without an HTTP response, as a network
// failure would.
func disconnect(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

// readParams returns the form parameters: the body of POSTs (as stripe-go
// sends them), the query string otherwise.
func readParams(r *http.Request) (url.Values, error) {
	if r.Method != http.MethodPost {
		return r.URL.Query(), nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	return url.ParseQuery(string(body))
}

func writeResponse(w http.ResponseWriter, resp response, headers map[string]string) {
	for k, v := range headers {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(resp.body)))
	w.WriteHeader(resp.status)
	_, _ = w.Write(resp.body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	writeResponse(w, jsonResponse(status, v), nil)
}

func jsonResponse(status int, v any) response {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		body = []byte(`{"error":{"type":"api_error","message":"sandbox: cannot encode response"}}`)
		status = http.StatusInternalServerError
	}
	return response{status: status, body: append(body, '\n')}
}

// ok is a 200 with an object.
func ok(v any) response { return jsonResponse(http.StatusOK, v) }

// fail is an error response; invalid_request_error 400s are not saved under
// an idempotency key, since Stripe rejects them before executing.
func fail(status int, e apiError) response {
	resp := jsonResponse(status, errorBody(e))
	resp.unsaved = status == http.StatusBadRequest && e.Type == "invalid_request_error"
	return resp
}

func (s *Server) unknownRoute(req *apiRequest) response {
	return fail(http.StatusNotFound, invalidRequest("", "Unrecognized request URL ("+req.r.Method+": "+req.r.URL.Path+")."))
}
