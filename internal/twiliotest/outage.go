package twiliotest

// SetUnreachable(true) makes the fake unreachable, as in an outage or a
// network partition: it stops listening, so new connections are refused,
// and cuts the connections already open (requests in progress get no
// answer). SetUnreachable(false) listens on the same address again. Either
// may be called in either state. The error is from listening again.
func (s *Server) SetUnreachable(down bool) error {
	if err := s.listener.Set(!down); err != nil {
		return err
	}
	if down {
		s.srv.CloseClientConnections()
	}
	return nil
}
