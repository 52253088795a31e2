package wire

// Type names of the handshake and liveness messages.
const (
	TypeAuthRequired = "AUTH_REQUIRED"
	TypeAuth         = "AUTH"
	TypeAuthAck      = "AUTH_ACK"
	TypeAuthFail     = "AUTH_FAIL"
	TypeDeviceHello  = "DEVICE_HELLO"
	TypeDeviceAck    = "DEVICE_ACK"
	TypePing         = "PING"
	TypePong         = "PONG"
	TypeError        = "ERROR"
)

// AuthRequired (S→C, flat) opens the handshake when auth is on. TopGun's
// server sends no fields; Reason is carried by TopGun's fixture and written
// only when set.
type AuthRequired struct {
	Reason string
}

func (*AuthRequired) Type() string  { return TypeAuthRequired }
func (m *AuthRequired) fields() int { return count(m.Reason != "") }
func (m *AuthRequired) body(e *encoder) {
	if m.Reason != "" {
		e.kv("reason", m.Reason)
	}
}

// Auth (C→S, flat) presents a JWT.
type Auth struct {
	Token           string
	ProtocolVersion *uint32
	DeviceToken     string // "" when absent
}

func (*Auth) Type() string { return TypeAuth }
func (m *Auth) fields() int {
	return 1 + count(m.ProtocolVersion != nil, m.DeviceToken != "")
}
func (m *Auth) body(e *encoder) {
	e.kv("token", m.Token)
	if m.ProtocolVersion != nil {
		e.str("protocolVersion")
		e.uint(uint64(*m.ProtocolVersion))
	}
	if m.DeviceToken != "" {
		e.kv("deviceToken", m.DeviceToken)
	}
}

// AuthAck (S→C, flat) ends a successful handshake. UserID is the JWT's sub.
// DeviceToken is set only when the server minted or rotated one.
type AuthAck struct {
	ProtocolVersion *uint32
	UserID          string
	DeviceID        string
	DeviceToken     string
}

func (*AuthAck) Type() string { return TypeAuthAck }
func (m *AuthAck) fields() int {
	return count(m.ProtocolVersion != nil, m.UserID != "", m.DeviceID != "", m.DeviceToken != "")
}
func (m *AuthAck) body(e *encoder) {
	if m.ProtocolVersion != nil {
		e.str("protocolVersion")
		e.uint(uint64(*m.ProtocolVersion))
	}
	if m.UserID != "" {
		e.kv("userId", m.UserID)
	}
	if m.DeviceID != "" {
		e.kv("deviceId", m.DeviceID)
	}
	if m.DeviceToken != "" {
		e.kv("deviceToken", m.DeviceToken)
	}
}

// AuthFail (S→C, flat) precedes the close of a failed handshake. TopGun
// sends Error "Authentication failed" and never Code.
type AuthFail struct {
	Error string
	Code  *uint32
}

func (*AuthFail) Type() string  { return TypeAuthFail }
func (m *AuthFail) fields() int { return count(m.Error != "", m.Code != nil) }
func (m *AuthFail) body(e *encoder) {
	if m.Error != "" {
		e.kv("error", m.Error)
	}
	if m.Code != nil {
		e.str("code")
		e.uint(uint64(*m.Code))
	}
}

// DeviceHello (C→S, flat) is sent by a client without a token.
type DeviceHello struct {
	DeviceToken string
}

func (*DeviceHello) Type() string  { return TypeDeviceHello }
func (m *DeviceHello) fields() int { return count(m.DeviceToken != "") }
func (m *DeviceHello) body(e *encoder) {
	if m.DeviceToken != "" {
		e.kv("deviceToken", m.DeviceToken)
	}
}

// DeviceAck (S→C, flat) answers DEVICE_HELLO.
type DeviceAck struct {
	DeviceID    string
	DeviceToken string
}

func (*DeviceAck) Type() string  { return TypeDeviceAck }
func (m *DeviceAck) fields() int { return count(m.DeviceID != "", m.DeviceToken != "") }
func (m *DeviceAck) body(e *encoder) {
	if m.DeviceID != "" {
		e.kv("deviceId", m.DeviceID)
	}
	if m.DeviceToken != "" {
		e.kv("deviceToken", m.DeviceToken)
	}
}

// Ping (C→S, flat) carries the client's wall clock in ms. Only PING keeps a
// connection alive on TopGun's server.
type Ping struct {
	Timestamp uint64
}

func (*Ping) Type() string { return TypePing }
func (*Ping) fields() int  { return 1 }
func (m *Ping) body(e *encoder) {
	e.str("timestamp")
	e.uint(m.Timestamp)
}

// Pong (S→C, flat) echoes the ping's timestamp and adds the server's clock.
type Pong struct {
	Timestamp  uint64
	ServerTime uint64
}

func (*Pong) Type() string { return TypePong }
func (*Pong) fields() int  { return 2 }
func (m *Pong) body(e *encoder) {
	e.str("timestamp")
	e.uint(m.Timestamp)
	e.str("serverTime")
	e.uint(m.ServerTime)
}

// ErrorMessage is ERROR (S→C, wrapped): TopGun sends 429 for overload and
// rate limits, 500 for a failed OP_BATCH, 413 for an oversized BATCH.
type ErrorMessage struct {
	Code    uint32
	Message string
	Details any // omitted when nil
}

func (*ErrorMessage) Type() string  { return TypeError }
func (m *ErrorMessage) fields() int { return 2 + count(m.Details != nil) }
func (m *ErrorMessage) body(e *encoder) {
	e.str("code")
	e.uint(uint64(m.Code))
	e.kv("message", m.Message)
	if m.Details != nil {
		e.str("details")
		e.value(m.Details)
	}
}

func init() {
	register(TypeAuthRequired, false, func(d *decoder, field fieldFunc) (Message, error) {
		m := &AuthRequired{}
		err := field(func(key []byte) error {
			if string(key) == "reason" {
				var err error
				m.Reason, _, err = d.optStr()
				return err
			}
			return d.skip()
		})
		return m, err
	})
	register(TypeAuth, false, func(d *decoder, field fieldFunc) (Message, error) {
		m := &Auth{}
		var have uint8
		err := field(func(key []byte) error {
			var err error
			switch string(key) {
			case "token":
				m.Token, err = d.str()
				have |= 1
			case "protocolVersion":
				m.ProtocolVersion, err = d.optU32()
			case "deviceToken":
				m.DeviceToken, _, err = d.optStr()
			default:
				return d.skip()
			}
			return err
		})
		return m, required(err, have, "token")
	})
	register(TypeAuthAck, false, func(d *decoder, field fieldFunc) (Message, error) {
		m := &AuthAck{}
		err := field(func(key []byte) error {
			var err error
			switch string(key) {
			case "protocolVersion":
				m.ProtocolVersion, err = d.optU32()
			case "userId":
				m.UserID, _, err = d.optStr()
			case "deviceId":
				m.DeviceID, _, err = d.optStr()
			case "deviceToken":
				m.DeviceToken, _, err = d.optStr()
			default:
				return d.skip()
			}
			return err
		})
		return m, err
	})
	register(TypeAuthFail, false, func(d *decoder, field fieldFunc) (Message, error) {
		m := &AuthFail{}
		err := field(func(key []byte) error {
			var err error
			switch string(key) {
			case "error":
				m.Error, _, err = d.optStr()
			case "code":
				m.Code, err = d.optU32()
			default:
				return d.skip()
			}
			return err
		})
		return m, err
	})
	register(TypeDeviceHello, false, func(d *decoder, field fieldFunc) (Message, error) {
		m := &DeviceHello{}
		err := field(func(key []byte) error {
			if string(key) == "deviceToken" {
				var err error
				m.DeviceToken, _, err = d.optStr()
				return err
			}
			return d.skip()
		})
		return m, err
	})
	register(TypeDeviceAck, false, func(d *decoder, field fieldFunc) (Message, error) {
		m := &DeviceAck{}
		err := field(func(key []byte) error {
			var err error
			switch string(key) {
			case "deviceId":
				m.DeviceID, _, err = d.optStr()
			case "deviceToken":
				m.DeviceToken, _, err = d.optStr()
			default:
				return d.skip()
			}
			return err
		})
		return m, err
	})
	register(TypePing, false, func(d *decoder, field fieldFunc) (Message, error) {
		m := &Ping{}
		var have uint8
		err := field(func(key []byte) error {
			if string(key) == "timestamp" {
				var err error
				m.Timestamp, err = d.u64()
				have |= 1
				return err
			}
			return d.skip()
		})
		return m, required(err, have, "timestamp")
	})
	register(TypePong, false, func(d *decoder, field fieldFunc) (Message, error) {
		m := &Pong{}
		var have uint8
		err := field(func(key []byte) error {
			var err error
			switch string(key) {
			case "timestamp":
				m.Timestamp, err = d.u64()
				have |= 1
			case "serverTime":
				m.ServerTime, err = d.u64()
				have |= 2
			default:
				return d.skip()
			}
			return err
		})
		return m, required(err, have, "timestamp", "serverTime")
	})
	register(TypeError, true, func(d *decoder, field fieldFunc) (Message, error) {
		m := &ErrorMessage{}
		var have uint8
		err := field(func(key []byte) error {
			var err error
			switch string(key) {
			case "code":
				m.Code, err = d.u32()
				have |= 1
			case "message":
				m.Message, err = d.str()
				have |= 2
			case "details":
				m.Details, err = d.value()
			default:
				return d.skip()
			}
			return err
		})
		return m, required(err, have, "code", "message")
	})
}

// required returns err, or else the missing-field error for have.
func required(err error, have uint8, names ...string) error {
	if err != nil {
		return err
	}
	return missing(have, names...)
}
