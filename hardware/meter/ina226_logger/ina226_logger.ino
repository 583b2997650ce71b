// INA226 current logger for ffenergy (Arduino Uno / Nano, ATmega328P at 16 MHz).
//
// Streams timestamped bus-voltage / shunt-voltage samples with the DUT's trigger pin state in the
// binary wire protocol of hardware/meter/protocol.md (sync + CRC-16 frames, a conversion counter to
// expose drops), after an ASCII info line that the host can ask for again by sending 'i'.
// Wiring and settings: hardware/meter/README.md.

#include <Arduino.h>
#include <Wire.h>
#include <util/crc16.h>

// ---- configuration: change here, the info line reports it to the host ----------------------
static const uint8_t INA_ADDR = 0x40;        // A1 = A0 = GND
static const float SHUNT_OHM = 0.1f;         // "R100" on the common breakout boards
static const uint8_t AVG_CODE = 1;           // averaging: 0..7 = 1, 4, 16, 64, 128, 256, 512, 1024
static const uint8_t VBUS_CT_CODE = 0;       // bus conversion time: 0..7 = 140, 204, 332, 588, 1100, 2116, 4156, 8244 us
static const uint8_t VSH_CT_CODE = 0;        // shunt conversion time, same codes
static const uint8_t TRIGGER_PIN = 2;        // DUT trigger output (through a level shifter if the DUT is not 5 V)
static const uint8_t ALERT_PIN = 3;          // INA226 ALERT, configured as conversion-ready (open drain, active low)
static const unsigned long BAUD = 500000UL;  // exact on a 16 MHz AVR (U2X)
static const char FW_VERSION[] = "1.0.0";

// ---- INA226 registers ------------------------------------------------------------------------
static const uint8_t REG_CONFIG = 0x00, REG_SHUNT = 0x01, REG_BUS = 0x02, REG_CAL = 0x05, REG_MASK = 0x06,
                     REG_MANUF_ID = 0xFE, REG_DIE_ID = 0xFF;
static const uint16_t MODE_SHUNT_BUS_CONT = 0x0007;
static const uint16_t MASK_CNVR = 0x0400;  // ALERT pin follows conversion ready
static const uint16_t AVG_COUNT[8] = {1, 4, 16, 64, 128, 256, 512, 1024};
static const uint16_t CT_US[8] = {140, 204, 332, 588, 1100, 2116, 4156, 8244};

// ---- wire protocol -----------------------------------------------------------------------------
static const uint8_t SYNC0 = 0xA7, SYNC1 = 0x7A, FRAME_LEN = 15;
static const uint8_t FLAG_TRIGGER = 0x01, FLAG_MISSED = 0x02;

static uint16_t seq = 0;
static uint32_t last_us = 0;
static uint32_t period_us = 0;
static bool ina_ok = false;

static void writeReg(uint8_t reg, uint16_t value) {
  Wire.beginTransmission(INA_ADDR);
  Wire.write(reg);
  Wire.write((uint8_t)(value >> 8));
  Wire.write((uint8_t)value);
  Wire.endTransmission();
}

static uint16_t readReg(uint8_t reg) {
  Wire.beginTransmission(INA_ADDR);
  Wire.write(reg);
  Wire.endTransmission();
  if (Wire.requestFrom(INA_ADDR, (uint8_t)2) != 2) return 0;
  uint16_t hi = Wire.read();
  return (hi << 8) | (uint8_t)Wire.read();
}

static bool configureIna() {
  if (readReg(REG_MANUF_ID) != 0x5449 || readReg(REG_DIE_ID) != 0x2260) return false;
  writeReg(REG_CONFIG, 0x8000);  // reset
  delay(2);
  // CAL so that the INA's own current register spans the shunt's full scale (81.92 mV / R) in 2^15
  // steps; the host computes current from the raw shunt register, so this only serves other readers.
  const float current_lsb = 0.08192f / SHUNT_OHM / 32768.0f;
  writeReg(REG_CAL, (uint16_t)(0.00512f / (current_lsb * SHUNT_OHM)));
  writeReg(REG_CONFIG, ((uint16_t)AVG_CODE << 9) | ((uint16_t)VBUS_CT_CODE << 6) | ((uint16_t)VSH_CT_CODE << 3) |
                           MODE_SHUNT_BUS_CONT);
  writeReg(REG_MASK, MASK_CNVR);
  return true;
}

static void sendInfo() {
  Serial.print(F("#FFM1 device=ina226-logger source=hardware fw="));
  Serial.print(FW_VERSION);
  if (!ina_ok) {
    Serial.print(F(" error=no-INA226-answering-at-0x"));
    Serial.print(INA_ADDR, HEX);
    Serial.print('\n');
    return;
  }
  Serial.print(F(" shunt_ohm="));
  Serial.print(SHUNT_OHM, 6);
  Serial.print(F(" shunt_lsb_v=2.5e-6 bus_lsb_v=1.25e-3 avg="));
  Serial.print(AVG_COUNT[AVG_CODE]);
  Serial.print(F(" vbus_ct_us="));
  Serial.print(CT_US[VBUS_CT_CODE]);
  Serial.print(F(" vsh_ct_us="));
  Serial.print(CT_US[VSH_CT_CODE]);
  Serial.print(F(" period_us="));
  Serial.print(period_us);
  Serial.print(F(" trigger_pin=D"));
  Serial.print(TRIGGER_PIN);
  Serial.print('\n');
}

static void sendFrame(uint32_t t_us, uint16_t bus, int16_t shunt, uint8_t flags) {
  uint8_t f[FRAME_LEN];
  f[0] = SYNC0;
  f[1] = SYNC1;
  f[2] = (uint8_t)seq;
  f[3] = (uint8_t)(seq >> 8);
  for (uint8_t k = 0; k < 4; k++) f[4 + k] = (uint8_t)(t_us >> (8 * k));
  f[8] = (uint8_t)bus;
  f[9] = (uint8_t)(bus >> 8);
  f[10] = (uint8_t)shunt;
  f[11] = (uint8_t)((uint16_t)shunt >> 8);
  f[12] = flags;
  uint16_t crc = 0xFFFF;  // CRC-16/CCITT-FALSE = XMODEM polynomial with init 0xFFFF
  for (uint8_t k = 2; k < 13; k++) crc = _crc_xmodem_update(crc, f[k]);
  f[13] = (uint8_t)crc;
  f[14] = (uint8_t)(crc >> 8);
  Serial.write(f, FRAME_LEN);
}

void setup() {
  pinMode(TRIGGER_PIN, INPUT);
  pinMode(ALERT_PIN, INPUT_PULLUP);
  Serial.begin(BAUD);
  Wire.begin();
  Wire.setClock(400000UL);
  period_us = (uint32_t)AVG_COUNT[AVG_CODE] * (CT_US[VBUS_CT_CODE] + CT_US[VSH_CT_CODE]);
  ina_ok = configureIna();
  sendInfo();
  last_us = micros();
}

void loop() {
  while (Serial.available()) {
    if (Serial.read() == 'i') sendInfo();
  }
  if (!ina_ok) {  // keep telling the host what is wrong, and retry the chip
    delay(500);
    ina_ok = configureIna();
    sendInfo();
    return;
  }
  if (digitalRead(ALERT_PIN) == HIGH) return;  // no new conversion yet
  const uint8_t trig = digitalRead(TRIGGER_PIN);
  const uint32_t now = micros();
  const int16_t shunt = (int16_t)readReg(REG_SHUNT);
  const uint16_t bus = readReg(REG_BUS);
  readReg(REG_MASK);  // clears the conversion-ready flag and releases ALERT
  // conversions that completed while we were busy are counted, so the host sees them as lost
  const uint32_t elapsed = now - last_us;
  uint16_t steps = (uint16_t)((elapsed + period_us / 2) / period_us);
  uint8_t flags = trig ? FLAG_TRIGGER : 0;
  if (steps > 1) flags |= FLAG_MISSED;
  seq += steps ? steps - 1 : 0;
  last_us = now;
  if (Serial.availableForWrite() >= FRAME_LEN) sendFrame(now, bus, shunt, flags);  // else dropped, seq still counts
  seq++;
}
