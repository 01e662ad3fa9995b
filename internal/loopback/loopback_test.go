package loopback

import "testing"

func TestIs(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1", true},
		{"127.0.0.1:8080", true},
		{"127.0.0.2", true},
		{"127.9.9.9:1", true},
		{"::1", true},
		{"[::1]", true},
		{"[::1]:8080", true},
		{"::ffff:127.0.0.1", true},
		{"[::ffff:127.0.0.1]:80", true},
		{"localhost", true},
		{"localhost:1", true},
		{"LOCALHOST.", true},
		{"LocalHost.:9031", true},
		{"", false},
		{":8080", false},
		{"0.0.0.0", false},
		{"0.0.0.0:80", false},
		{"::", false},
		{"[::]:80", false},
		{"::ffff:10.0.0.1", false},
		{"10.0.0.1:80", false},
		{"128.0.0.1", false},
		{"example.com", false},
		{"example.com:80", false},
		{"localhost.example.com", false},
		{"app.localhost", false},
		{"127.0.0.1.nip.io", false},
		{"localhost..", false},
	} {
		if got := Is(tc.addr); got != tc.want {
			t.Errorf("Is(%q) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}
