#pragma once
/// Typed errors: each message names what was wrong, the bad value and what would work.
#include <stdexcept>
#include <string>

namespace credence {

/// Base of every error credence throws; the CLI maps it to a one-line message and exit code 1.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
/// A value the caller passed is invalid (unknown option, out-of-range number, malformed spec).
class InvalidArgument : public Error {
 public:
  using Error::Error;
};
/// The request is valid but this model, method or build cannot serve it.
class NotSupported : public Error {
 public:
  using Error::Error;
};
/// A computation produced NaN/inf or a matrix was not positive definite.
class NumericalError : public Error {
 public:
  using Error::Error;
};
/// Input data is missing or malformed (file, row, value, label, split).
class DataError : public Error {
 public:
  using Error::Error;
};
/// A file could not be read or written, or is not what it claims to be.
class IoError : public Error {
 public:
  using Error::Error;
};

}  // namespace credence
