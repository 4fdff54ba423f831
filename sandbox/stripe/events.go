package stripesandbox

import (
	"encoding/json"
	"net/http"
)

func (s *Server) getEvent(req *apiRequest) response {
	s.mu.Lock()
	defer s.mu.Unlock()
	ev, found := s.eventsByID[req.r.PathValue("id")]
	if !found {
		return fail(http.StatusNotFound, noSuch("event", "id", req.r.PathValue("id")))
	}
	return response{status: http.StatusOK, body: ev.body}
}

// listEvents is GET /v1/events, newest first, optionally of one type: how a
// reconciler finds events whose deliveries were lost.
func (s *Server) listEvents(req *apiRequest) response {
	if k := unknownParams(req.params, "type", "types[", "limit", "starting_after", "ending_before", "created[", "created", "delivery_success"); k != "" {
		return fail(http.StatusBadRequest, invalidRequest(k, "Received unknown parameter: "+k))
	}
	limit, bad := limitParam(req.params)
	if bad != nil {
		return fail(http.StatusBadRequest, *bad)
	}
	types := map[string]bool{}
	for _, t := range append(list(req.params, "types"), req.params["type"]...) {
		types[t] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for i := len(s.events) - 1; i >= 0; i-- {
		if len(types) == 0 || types[s.events[i].Type] {
			ids = append(ids, s.events[i].ID)
		}
	}
	from, to, hasMore, bad := page(ids, req.params.Get("starting_after"), limit)
	if bad != nil {
		return fail(http.StatusBadRequest, *bad)
	}
	data := make([]any, 0, to-from)
	for _, id := range ids[from:to] {
		data = append(data, json.RawMessage(s.eventsByID[id].body))
	}
	return ok(listJSON{Object: "list", URL: "/v1/events", HasMore: hasMore, Data: data})
}
