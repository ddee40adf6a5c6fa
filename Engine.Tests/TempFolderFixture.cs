// A fresh temporary folder for each test of a fixture, deleted with everything in it after the test.
using NUnit.Framework;

namespace Engine.Tests;

/// <summary>Base of the fixtures whose tests write files: <see cref="Folder"/> is new for every test.</summary>
public abstract class TempFolderFixture
{
    /// <summary>This test's own empty folder under the system's temporary directory.</summary>
    protected string Folder { get; private set; } = null!;

    /// <summary>Creates <see cref="Folder"/>.</summary>
    [SetUp]
    public void CreateFolder() =>
        Folder = Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), $"engine-test-{Guid.NewGuid():N}")).FullName;

    /// <summary>Deletes <see cref="Folder"/> and what the test left in it.</summary>
    [TearDown]
    public void DeleteFolder() => Directory.Delete(Folder, recursive: true);
}
