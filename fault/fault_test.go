package fault

import "testing"

// A kind sent as a Restate terminal error's code comes back the same kind,
// except those that cannot: a transient fault that reached the journal is
// final, and a conflict reads as Restate's own 409, a cancellation.
func TestStatusRoundTrips(t *testing.T) {
	for kind, want := range map[Kind]Kind{Invalid: Invalid, NotFound: NotFound, Cancelled: Cancelled, Permanent: Permanent, Unavailable: Permanent, Conflict: Cancelled, Internal: Permanent} {
		if got := KindOfStatus(HTTPStatus(New(kind, "x"))); got != want {
			t.Errorf("%v → %d → %v, want %v", kind, HTTPStatus(New(kind, "x")), got, want)
		}
	}
	if HTTPStatus(New(Permanent, "x")) != 422 || HTTPStatus(New(Internal, "x")) != 500 {
		t.Error("Permanent is 422 and Internal 500 for the API")
	}
}
