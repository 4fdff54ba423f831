package api

import (
	"crypto/subtle"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// codecBodyLimit bounds one encode or decode request; the Web UI sends a
// history page's payloads at a time, each under Temporal's 2 MiB limit.
const codecBodyLimit = 16 << 20

// codecAllowedHeaders are what the Web UI and the temporal CLI send.
const codecAllowedHeaders = "Content-Type, X-Namespace, Authorization, Authorization-Extras"

// mountCodec serves the Temporal codec server protocol: POST
// /codecs/encode and /codecs/decode with {"payloads":[...]} (protojson of
// common.v1.Payloads), answered in the same shape. Authorization is a
// bearer token (the api token or the codec token); /codecs/<codec
// token>/{encode,decode} is the same endpoint for a Web UI, which can send no
// header of its own (it is then started with that URL as its codec
// endpoint). Browsers of CodecOrigins may call it (CORS); preflights are
// answered without authorization, as browsers send none.
func (s *Server) mountCodec(mux *http.ServeMux) {
	if s.PayloadCodec == nil {
		return
	}
	// One pattern for every method and depth under /codecs/: the handler
	// routes itself, so a path holding the codec token is never logged by
	// the not-found handler.
	mux.HandleFunc("/codecs/", func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		allowed := origin != "" && slices.Contains(s.CodecOrigins, origin)
		if allowed {
			w.Header().Set("Access-Control-Allow-Origin", origin)
			w.Header().Set("Access-Control-Allow-Credentials", "true")
		}
		w.Header().Add("Vary", "Origin")
		rest := strings.TrimPrefix(r.URL.Path, "/codecs/")
		pathToken, op, hasToken := strings.Cut(rest, "/")
		if !hasToken {
			op, pathToken = rest, ""
		}
		if op != "encode" && op != "decode" || strings.Contains(op, "/") {
			writeError(w, http.StatusNotFound, "not_found", "the codec endpoint is POST /codecs/encode or /codecs/decode", "")
			return
		}
		if r.Method == http.MethodOptions {
			if !allowed {
				writeError(w, http.StatusForbidden, "origin_not_allowed", "this origin may not call the codec endpoint (BILLFLOW_CODEC_ORIGINS)", "")
				return
			}
			w.Header().Set("Access-Control-Allow-Methods", "POST")
			w.Header().Set("Access-Control-Allow-Headers", codecAllowedHeaders)
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST, OPTIONS")
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed on the codec endpoint; use POST", "")
			return
		}
		if !s.codecAuthorized(r, pathToken, hasToken) {
			writeError(w, http.StatusUnauthorized, "unauthorized", "the codec endpoint needs a bearer token (the api or codec token) or the codec token in its path", "")
			return
		}
		s.codecPayloads(w, r, op)
	})
}

// codecPayloads is the protocol itself (as the SDK's
// converter.NewPayloadCodecHTTPHandler, with the api's JSON errors).
func (s *Server) codecPayloads(w http.ResponseWriter, r *http.Request, op string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, codecBodyLimit))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the payloads are larger than %d bytes", codecBodyLimit), "")
		return
	}
	var in commonpb.Payloads
	if err := protojson.Unmarshal(body, &in); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "the body is not {\"payloads\":[...]}: "+err.Error(), "")
		return
	}
	code := s.PayloadCodec.Decode
	if op == "encode" {
		code = s.PayloadCodec.Encode
	}
	out, err := code(in.Payloads)
	if err != nil {
		writeError(w, http.StatusBadRequest, "codec_failed", err.Error(), "")
		return
	}
	b, err := protojson.Marshal(&commonpb.Payloads{Payloads: out})
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error(), "")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// codecAuthorized: the path token must be the codec token; a bearer token
// may be the codec token or the api token.
func (s *Server) codecAuthorized(r *http.Request, pathToken string, hasPathToken bool) bool {
	if hasPathToken {
		return equalToken(pathToken, s.CodecToken)
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && (equalToken(got, s.CodecToken) || equalToken(got, s.Token))
}

func equalToken(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
