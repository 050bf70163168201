//! The seam between the poller and the network: [`Connector`] opens a
//! [`RegisterReader`]; [`ModbusTcp`] is the real one (tokio-modbus over a
//! TCP stream), tests put a scripted fake behind the same traits.
//!
//! Neither trait applies timeouts: the poller wraps every call in its own.

use std::future::Future;
use std::io;

use parkwatch_config::RegisterType;
use tokio::net::TcpStream;
use tokio_modbus::client::{Context, Reader as _, tcp};
use tokio_modbus::{ExceptionCode, Slave};

/// Why a connect or a read failed, before the poller adds its context.
#[derive(Debug, thiserror::Error)]
pub enum ReadFailure {
    /// The TCP connection failed or broke.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The answer did not fit the request (wrong transaction, function).
    #[error("{0}")]
    Protocol(String),
    /// The server answered with a Modbus exception code.
    #[error("Modbus exception 0x{code:02X} ({text})")]
    Exception {
        /// The exception code, e.g. 0x0B.
        code: u8,
        /// Its meaning.
        text: String,
    },
}

impl ReadFailure {
    /// Whether this failure came from the device itself (so the device is
    /// reachable): any exception except the gateway's 0x0A (path
    /// unavailable) and 0x0B (target device failed to respond).
    pub fn device_answered(&self) -> bool {
        matches!(self, ReadFailure::Exception { code, .. } if !matches!(code, 0x0A | 0x0B))
    }

    /// Whether the connection is still good afterwards: only an exception
    /// leaves the request/response stream in step.
    pub fn keeps_connection(&self) -> bool {
        matches!(self, ReadFailure::Exception { .. })
    }
}

/// One open connection to a Modbus unit.
pub trait RegisterReader: Send {
    /// Reads `count` registers of `table` starting at `address`.
    fn read(
        &mut self,
        table: RegisterType,
        address: u16,
        count: u16,
    ) -> impl Future<Output = Result<Vec<u16>, ReadFailure>> + Send;
}

/// Opens connections to one Modbus unit.
pub trait Connector: Send + Sync + 'static {
    /// The connection type.
    type Conn: RegisterReader + 'static;
    /// Opens a connection.
    fn connect(&self) -> impl Future<Output = Result<Self::Conn, ReadFailure>> + Send;
}

/// Modbus TCP to `address` (`host:port`), talking to `unit`.
#[derive(Debug, Clone)]
pub struct ModbusTcp {
    /// `host:port`; host names are resolved on every connect.
    pub address: String,
    /// Unit (slave) id.
    pub unit: u8,
}

/// An open Modbus TCP connection.
pub struct ModbusConn {
    ctx: Context,
}

impl std::fmt::Debug for ModbusConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ModbusConn")
    }
}

impl Connector for ModbusTcp {
    type Conn = ModbusConn;

    async fn connect(&self) -> Result<ModbusConn, ReadFailure> {
        let stream = TcpStream::connect(self.address.as_str()).await?;
        // Requests are tiny and latency matters more than packing.
        stream.set_nodelay(true)?;
        Ok(ModbusConn {
            ctx: tcp::attach_slave(stream, Slave(self.unit)),
        })
    }
}

fn exception(code: ExceptionCode) -> ReadFailure {
    ReadFailure::Exception {
        code: u8::from(code),
        text: code.to_string(),
    }
}

impl RegisterReader for ModbusConn {
    async fn read(
        &mut self,
        table: RegisterType,
        address: u16,
        count: u16,
    ) -> Result<Vec<u16>, ReadFailure> {
        let answer = match table {
            RegisterType::Holding => self.ctx.read_holding_registers(address, count).await,
            RegisterType::Input => self.ctx.read_input_registers(address, count).await,
        };
        match answer {
            Ok(Ok(words)) => Ok(words),
            Ok(Err(code)) => Err(exception(code)),
            Err(tokio_modbus::Error::Transport(e)) => Err(ReadFailure::Io(e)),
            Err(tokio_modbus::Error::Protocol(e)) => Err(ReadFailure::Protocol(e.to_string())),
        }
    }
}
